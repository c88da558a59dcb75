//! The local engine as a backend: what it cannot do is refused before a model is loaded
//! ([`check`]), a chat request becomes a template prompt and a parsed event stream ([`chat`]),
//! one loop turns engine tokens into API-neutral events ([`events`]), and a draft model may
//! propose tokens ([`draft`]).

pub(crate) mod chat;
pub(crate) mod check;
pub(crate) mod draft;
pub(crate) mod events;
pub(crate) mod grammar;
pub(crate) mod params;
