//! The backend seam's last step: one encoder per API from API-neutral events to the client's
//! stream or whole answer, and the audit outcome (tokens, finish reason, tool calls, success or
//! the error) set here — once, for every backend — instead of by each handler.

use std::convert::Infallible;

use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mlx_manager_api::anthropic::StreamEvent;
use mlx_manager_api::encode::{ChatEncoder, MessagesEncoder};
use mlx_manager_api::{Answer, Event, Finish};

use crate::error::{ApiError, Flavor};
use crate::local::events::Events;
use crate::record::RequestRecord;

/// What a backend answered with.
pub(crate) enum Reply {
    /// Events as they come (the prompt's size when known).
    Events { prompt_tokens: u32, events: Events },
    /// A whole answer.
    Whole(Answer),
}

/// One API's encoding.
pub(crate) trait Encoder: Send + 'static {
    /// The events before any output.
    fn start(&mut self, prompt_tokens: u32) -> Vec<Sse>;
    /// The events one backend event makes.
    fn on(&mut self, event: Event) -> Vec<Sse>;
    /// The events after `Done`.
    fn end(&mut self) -> Vec<Sse>;
    /// A failure mid-stream.
    fn error(&self, error: &ApiError, request_id: &str) -> Sse;
    /// A whole answer.
    fn whole(&self, answer: Answer) -> Response;
    /// The finish reason as this API spells it.
    fn finish_name(&self, finish: &Finish) -> &'static str;
}

fn data<T: serde::Serialize>(value: &T) -> Sse {
    Sse::default().data(serde_json::to_string(value).expect("API types serialise"))
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
    fn error(&self, error: &ApiError, request_id: &str) -> Sse {
        Sse::default().data(error.body(Flavor::OpenAi, "/v1/chat/completions", request_id).to_string())
    }
    fn whole(&self, answer: Answer) -> Response {
        Json(self.completion(answer)).into_response()
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
    fn error(&self, error: &ApiError, request_id: &str) -> Sse {
        Sse::default().event("error").data(error.body(Flavor::Anthropic, "/v1/messages", request_id).to_string())
    }
    fn whole(&self, answer: Answer) -> Response {
        Json(self.message_of(answer)).into_response()
    }
    fn finish_name(&self, finish: &Finish) -> &'static str {
        finish.anthropic().0.as_str()
    }
}

fn record_done(
    record: &RequestRecord,
    encoder: &dyn Encoder,
    answer_finish: &Finish,
    usage: mlx_manager_api::Usage,
    calls: u32,
) {
    record.set_tokens(usage.prompt_tokens as usize, usage.completion_tokens as usize);
    record.set_finish(encoder.finish_name(answer_finish), calls);
    record.succeed();
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
        Reply::Whole(answer) => {
            let finish = answer.finish.clone().unwrap_or(Finish::Stop);
            if !stream {
                record_done(&record, &encoder, &finish, answer.usage, answer.calls.len() as u32);
                return Ok(encoder.whole(answer));
            }
            let events = answer.events().into_iter().map(Ok);
            (answer.usage.prompt_tokens, futures_util::stream::iter(events).boxed())
        }
        Reply::Events { prompt_tokens, events } => (prompt_tokens, events),
    };
    if !stream {
        let mut answer = Answer::default();
        while let Some(event) = events.next().await {
            answer.push(event?);
        }
        let finish = answer.finish.clone().unwrap_or(Finish::Stop);
        record_done(&record, &encoder, &finish, answer.usage, answer.calls.len() as u32);
        return Ok(encoder.whole(answer));
    }
    let body = async_stream::stream! {
        for e in encoder.start(prompt_tokens) {
            yield Ok::<_, Infallible>(e);
        }
        let (mut calls, mut generated) = (0u32, 0usize);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    match &event {
                        Event::ToolCallStart { .. } => calls += 1,
                        Event::Text(_) | Event::Reasoning(_) | Event::ToolCallArguments { .. } => generated += 1,
                        Event::Done { finish, usage } => record_done(&record, &encoder, finish, *usage, calls),
                        _ => {}
                    }
                    let done = matches!(event, Event::Done { .. });
                    for e in encoder.on(event) {
                        yield Ok(e);
                    }
                    if done {
                        for e in encoder.end() {
                            yield Ok(e);
                        }
                        return;
                    }
                }
                Err(error) => {
                    record.set_tokens(prompt_tokens as usize, generated);
                    record.fail(&error);
                    yield Ok(encoder.error(&error, &request_id));
                    return;
                }
            }
        }
    };
    Ok(axum::response::sse::Sse::new(body).keep_alive(KeepAlive::default()).into_response())
}
