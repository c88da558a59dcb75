//! The wire types of the two APIs MLX Manager speaks: OpenAI (chat completions, completions,
//! embeddings) and Anthropic (messages), requests, responses and stream events, with tools, tool
//! calls, tool results, reasoning and usage — and the conversions between the two.
//!
//! Why a crate of its own: the server parses requests and encodes answers with these types, and
//! the providers crate translates between the APIs with the same ones, so each shape is written
//! once. No I/O, no MLX, no axum: only serde.
#![deny(missing_docs)]
