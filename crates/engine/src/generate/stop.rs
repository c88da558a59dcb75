//! Stop strings: text that could still become one is held back until it cannot.

/// Holds back text that could be the start of a stop string.
pub(super) struct StopMatcher {
    pub(super) stops: Vec<String>,
    pub(super) pending: String,
}

impl StopMatcher {
    /// Returns the text safe to release and the stop string hit, if any.
    pub(super) fn push(&mut self, text: &str) -> (String, Option<String>) {
        self.pending.push_str(text);
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()).map(|pos| (pos, s)))
            .min_by_key(|(pos, _)| *pos);
        if let Some((pos, stop)) = hit {
            let stop = stop.clone();
            let out = self.pending[..pos].to_string();
            self.pending.clear();
            return (out, Some(stop));
        }
        // The longest suffix of `pending` that is a proper prefix of some stop string stays.
        let keep = self
            .pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.pending[i..])))
            .unwrap_or(self.pending.len());
        let out = self.pending[..keep].to_string();
        self.pending.drain(..keep);
        (out, None)
    }

    pub(super) fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_strings_hold_back_prefixes_and_cut_at_the_match() {
        let mut m = StopMatcher { stops: vec!["END".into(), "éx".into()], pending: String::new() };
        assert_eq!(m.push("abc E"), ("abc ".to_string(), None));
        assert_eq!(m.push("N"), (String::new(), None));
        assert_eq!(m.push("Dtail"), (String::new(), Some("END".to_string())));
        let mut m = StopMatcher { stops: vec!["éx".into()], pending: String::new() };
        assert_eq!(m.push("aé"), ("a".to_string(), None));
        assert_eq!(m.push("y"), ("éy".to_string(), None));
    }
}
