//! The backend seam's last step: one encoder per API from API-neutral events to the client's
//! stream or whole body, and the audit outcome (tokens, finish reason, tool calls, success or
//! the error) set here — once, for every backend — instead of by each handler.

use std::convert::Infallible;

use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mlx_manager_api::anthropic::StreamEvent;
use mlx_manager_api::encode::{ChatEncoder, CompletionEncoder, MessagesEncoder};
use mlx_manager_api::{Answer, Event, Finish, Usage};

use crate::error::{ApiError, Flavor};
use crate::local::events::Events;
use crate::record::RequestRecord;

/// The chat encoder of a request (`chatcmpl-` + the request id's hex).
pub(crate) fn chat_encoder(request_id: &str, model: &str, include_usage: bool) -> ChatEncoder {
    let id = format!("chatcmpl-{}", request_id.trim_start_matches("req_"));
    ChatEncoder::new(id, chrono::Utc::now().timestamp(), model, include_usage)
}

/// The messages encoder of a request (`msg_` + the request id's hex).
pub(crate) fn messages_encoder(request_id: &str, model: &str) -> MessagesEncoder {
    MessagesEncoder::new(format!("msg_{}", request_id.trim_start_matches("req_")), model)
}

/// What a backend answered with.
pub(crate) enum Reply {
    /// Events as they come (the prompt's size when known).
    Events { prompt_tokens: u32, events: Events },
    /// A whole answer.
    Whole(Answer),
}

/// One API's encoding.
pub(crate) trait Encoder: Send + 'static {
    /// Answers that make the whole (one per prompt for completions; one otherwise).
    fn choices(&self) -> usize {
        1
    }
    /// The events before any output.
    fn start(&mut self, prompt_tokens: u32) -> Vec<Sse>;
    /// The events one backend event makes.
    fn on(&mut self, event: Event) -> Vec<Sse>;
    /// The events after the last answer.
    fn end(&mut self) -> Vec<Sse>;
    /// The API's flavour and path (for a mid-stream error event).
    fn flavor(&self) -> (Flavor, &'static str);
    /// The answers as one body.
    fn whole(&self, answers: Vec<Answer>) -> Response;
    /// The finish reason as this API spells it.
    fn finish_name(&self, finish: &Finish) -> &'static str;
}

fn data<T: serde::Serialize>(value: &T) -> Sse {
    Sse::default().data(serde_json::to_string(value).expect("API types serialise"))
}

/// A failure after the stream began, in the stream's own format.
pub(crate) fn error_event(error: &ApiError, flavor: Flavor, path: &str, request_id: &str) -> Sse {
    let body = error.body(flavor, path, request_id).to_string();
    match flavor {
        Flavor::Anthropic => Sse::default().event("error").data(body),
        Flavor::OpenAi => Sse::default().data(body),
    }
}

/// Records a whole JSON answer that needs no encoding (embeddings, a provider's completions).
pub(crate) fn recorded<T: serde::Serialize>(record: &RequestRecord, body: T, prompt: u32, completion: u32) -> Response {
    record.set_tokens(prompt as usize, completion as usize);
    record.succeed();
    Json(body).into_response()
}

impl Encoder for ChatEncoder {
    fn start(&mut self, _prompt_tokens: u32) -> Vec<Sse> {
        vec![data(&ChatEncoder::start(self))]
    }
    fn on(&mut self, event: Event) -> Vec<Sse> {
        ChatEncoder::on(self, event).iter().map(data).collect()
    }
    fn end(&mut self) -> Vec<Sse> {
        vec![Sse::default().data("[DONE]")]
    }
    fn flavor(&self) -> (Flavor, &'static str) {
        (Flavor::OpenAi, "/v1/chat/completions")
    }
    fn whole(&self, answers: Vec<Answer>) -> Response {
        Json(self.completion(answers.into_iter().next().unwrap_or_default())).into_response()
    }
    fn finish_name(&self, finish: &Finish) -> &'static str {
        finish.openai().as_str()
    }
}

fn named(event: &StreamEvent) -> Sse {
    data(event).event(event.name())
}

impl Encoder for MessagesEncoder {
    fn start(&mut self, prompt_tokens: u32) -> Vec<Sse> {
        MessagesEncoder::start(self, prompt_tokens).iter().map(named).collect()
    }
    fn on(&mut self, event: Event) -> Vec<Sse> {
        MessagesEncoder::on(self, event).iter().map(named).collect()
    }
    fn end(&mut self) -> Vec<Sse> {
        Vec::new()
    }
    fn flavor(&self) -> (Flavor, &'static str) {
        (Flavor::Anthropic, "/v1/messages")
    }
    fn whole(&self, answers: Vec<Answer>) -> Response {
        Json(self.message_of(answers.into_iter().next().unwrap_or_default())).into_response()
    }
    fn finish_name(&self, finish: &Finish) -> &'static str {
        finish.anthropic().0.as_str()
    }
}

impl Encoder for CompletionEncoder {
    fn choices(&self) -> usize {
        CompletionEncoder::choices(self)
    }
    fn start(&mut self, _prompt_tokens: u32) -> Vec<Sse> {
        Vec::new()
    }
    fn on(&mut self, event: Event) -> Vec<Sse> {
        CompletionEncoder::on(self, event).iter().map(data).collect()
    }
    fn end(&mut self) -> Vec<Sse> {
        vec![Sse::default().data("[DONE]")]
    }
    fn flavor(&self) -> (Flavor, &'static str) {
        (Flavor::OpenAi, "/v1/completions")
    }
    fn whole(&self, answers: Vec<Answer>) -> Response {
        Json(self.completion(answers)).into_response()
    }
    fn finish_name(&self, finish: &Finish) -> &'static str {
        finish.openai().as_str()
    }
}

/// What the answers so far add up to, for the audit row.
#[derive(Default)]
struct Tally {
    answers: usize,
    usage: Usage,
    calls: u32,
    finish: Option<Finish>,
}

impl Tally {
    fn add(&mut self, finish: &Finish, usage: Usage) {
        self.answers += 1;
        self.usage.prompt_tokens += usage.prompt_tokens;
        self.usage.completion_tokens += usage.completion_tokens;
        self.finish = Some(finish.clone());
    }

    fn record(&self, record: &RequestRecord, encoder: &dyn Encoder) {
        record.set_tokens(self.usage.prompt_tokens as usize, self.usage.completion_tokens as usize);
        record.set_finish(encoder.finish_name(self.finish.as_ref().unwrap_or(&Finish::Stop)), self.calls);
        record.succeed();
    }
}

/// Answers the client: streamed when it asked for a stream, else whole.
pub(crate) async fn respond(
    mut encoder: impl Encoder,
    record: RequestRecord,
    request_id: String,
    reply: Reply,
    stream: bool,
) -> Result<Response, ApiError> {
    let (prompt_tokens, mut events) = match reply {
        Reply::Whole(answer) if !stream => {
            let mut tally = Tally { calls: answer.calls.len() as u32, ..Tally::default() };
            tally.add(answer.finish.as_ref().unwrap_or(&Finish::Stop), answer.usage);
            tally.record(&record, &encoder);
            return Ok(encoder.whole(vec![answer]));
        }
        Reply::Whole(answer) => {
            let events = answer.events().into_iter().map(Ok);
            (answer.usage.prompt_tokens, futures_util::stream::iter(events).boxed())
        }
        Reply::Events { prompt_tokens, events } => (prompt_tokens, events),
    };
    if !stream {
        let (mut answers, mut current, mut tally) = (Vec::new(), Answer::default(), Tally::default());
        while let Some(event) = events.next().await {
            let event = event?;
            if let Event::Done { finish, usage } = &event {
                tally.add(finish, *usage);
            }
            let done = matches!(event, Event::Done { .. });
            current.push(event);
            if done {
                tally.calls += current.calls.len() as u32;
                answers.push(std::mem::take(&mut current));
                if answers.len() == encoder.choices() {
                    break;
                }
            }
        }
        tally.record(&record, &encoder);
        return Ok(encoder.whole(answers));
    }
    let body = async_stream::stream! {
        for e in encoder.start(prompt_tokens) {
            yield Ok::<_, Infallible>(e);
        }
        let (mut tally, mut pieces) = (Tally::default(), 0usize);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    match &event {
                        Event::ToolCallStart { .. } => tally.calls += 1,
                        Event::Text(_) | Event::Reasoning(_) | Event::ToolCallArguments { .. } => pieces += 1,
                        Event::Done { finish, usage } => tally.add(finish, *usage),
                        _ => {}
                    }
                    for e in encoder.on(event) {
                        yield Ok(e);
                    }
                    if tally.answers == encoder.choices() {
                        tally.record(&record, &encoder);
                        for e in encoder.end() {
                            yield Ok(e);
                        }
                        return;
                    }
                }
                Err(error) => {
                    record.set_tokens(prompt_tokens as usize, pieces);
                    record.fail(&error);
                    let (flavor, path) = encoder.flavor();
                    yield Ok(error_event(&error, flavor, path, &request_id));
                    return;
                }
            }
        }
    };
    Ok(axum::response::sse::Sse::new(body).keep_alive(KeepAlive::default()).into_response())
}
