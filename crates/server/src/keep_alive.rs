//! `keep_alive` on generation and embeddings requests (as Ollama has it): how long the model may
//! stay loaded while idle after this request — seconds as a number (negative: keep it loaded) or a
//! duration string such as `"5m"` or `"1h 30m"`. It replaces the pool's default idle TTL for that
//! model; pinned models stay loaded regardless.

use std::time::Duration;

use mlx_manager_engine::KeepAlive;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::invalid;

/// Longest keep-alive accepted as a duration (longer: use a negative number).
const MAX: Duration = Duration::from_secs(365 * 86_400);

const HELP: &str = "seconds (a negative number keeps the model loaded) or a duration such as \"5m\" or \"1h 30m\", \
                    up to 365 days";

/// The request's keep-alive, if it set one.
pub fn parse(value: Option<&Value>) -> Result<Option<KeepAlive>, ApiError> {
    let seconds = |s: f64| -> Result<Option<KeepAlive>, ApiError> {
        if !s.is_finite() {
            Err(invalid("keep_alive", HELP))
        } else if s < 0.0 {
            Ok(Some(KeepAlive::Forever))
        } else if s > MAX.as_secs_f64() {
            Err(invalid("keep_alive", HELP))
        } else {
            Ok(Some(KeepAlive::For(Duration::from_secs_f64(s))))
        }
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => seconds(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(text)) => {
            let text = text.trim();
            if let Ok(s) = text.parse::<f64>() {
                return seconds(s);
            }
            match humantime::parse_duration(text) {
                Ok(d) if d <= MAX => Ok(Some(KeepAlive::For(d))),
                _ => Err(invalid("keep_alive", HELP)),
            }
        }
        Some(_) => Err(invalid("keep_alive", HELP)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> Option<KeepAlive> {
        parse(Some(&v)).unwrap()
    }

    #[test]
    fn numbers_strings_and_durations() {
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(ok(json!(null)), None);
        assert_eq!(ok(json!(300)), Some(KeepAlive::For(Duration::from_secs(300))));
        assert_eq!(ok(json!(0)), Some(KeepAlive::For(Duration::ZERO)));
        assert_eq!(ok(json!(1.5)), Some(KeepAlive::For(Duration::from_millis(1500))));
        assert_eq!(ok(json!(-1)), Some(KeepAlive::Forever));
        assert_eq!(ok(json!("90")), Some(KeepAlive::For(Duration::from_secs(90))));
        assert_eq!(ok(json!("5m")), Some(KeepAlive::For(Duration::from_secs(300))));
        assert_eq!(ok(json!("1h 30m")), Some(KeepAlive::For(Duration::from_secs(5400))));
    }

    #[test]
    fn nonsense_is_a_validation_error_naming_the_field() {
        for bad in [json!("soon"), json!(true), json!([1]), json!("400days"), json!(1e12)] {
            let err = parse(Some(&bad)).unwrap_err();
            let ApiError::Validation(fields) = err else { panic!("{bad}: not a validation error") };
            assert_eq!(fields[0].field, "keep_alive", "{bad}");
        }
    }
}
