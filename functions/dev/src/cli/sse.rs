//! A parser of `text/event-stream` (Server-Sent Events), fed the body's chunks as they come.
//!
//! Lines end with `\n`, `\r\n` or `\r`; a chunk may end anywhere, even inside a UTF-8 sequence
//! or between the `\r` and `\n` of one line ending. Comments (`:` lines) are skipped, `data`
//! lines of one event are joined with `\n`, and an event is complete at its blank line.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event` field; `message` when it has none.
    pub event: String,
    /// Its `data` lines, joined with `\n`.
    pub data: String,
    /// Its `id` field, if any.
    pub id: Option<String>,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` starting the next one belongs to it.
    after_carriage_return: bool,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
}

impl SseParser {
    /// Feeds one chunk; answers the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut bytes = chunk;
        if self.after_carriage_return {
            self.after_carriage_return = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&byte| byte == b'\n' || byte == b'\r') {
            self.pending.extend_from_slice(&bytes[..end]);
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            let ending_len = match (bytes[end], bytes.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_carriage_return = true;
                    1
                }
                _ => 1,
            };
            bytes = &bytes[end + ending_len..];
        }
        self.pending.extend_from_slice(bytes);
        events
    }

    /// Handles one whole line; a blank line completes the event being read, if it has data.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if self.data.is_empty() {
            return None;
        }
        Some(SseEvent {
            event: event
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "message".into()),
            data: std::mem::take(&mut self.data).join("\n"),
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(stream: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        stream.chunks(chunk).flat_map(|piece| parser.push(piece)).collect()
    }

    #[test]
    fn an_axum_status_stream_gives_its_events_whatever_the_chunking() {
        let stream = "event: status\ndata: {\"status\":\"QUEUED\",\"note\":\"caf\u{e9}\"}\n\n:\n\nevent: status\ndata: {\"status\":\"COMPLETED\"}\n\n";
        for chunk in 1..=stream.len() {
            let events = parse_in_chunks(stream.as_bytes(), chunk);
            assert_eq!(events.len(), 2, "chunks of {chunk}: {events:?}");
            assert_eq!(events[0].event, "status");
            assert_eq!(events[0].data, "{\"status\":\"QUEUED\",\"note\":\"caf\u{e9}\"}");
            assert_eq!(events[1].data, "{\"status\":\"COMPLETED\"}");
        }
    }

    #[test]
    fn every_line_ending_works_even_split_between_chunks() {
        let stream = b"data: a\r\ndata: b\r\r\nevent: x\rdata:c\r\r";
        for chunk in 1..=stream.len() {
            let events = parse_in_chunks(stream, chunk);
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "message".into(),
                        data: "a\nb".into(),
                        id: None
                    },
                    SseEvent {
                        event: "x".into(),
                        data: "c".into(),
                        id: None
                    },
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn comments_unknown_fields_and_events_without_data_are_skipped() {
        let mut parser = SseParser::default();
        let events = parser.push(b": keep-alive\n\nevent: lonely\n\nretry: 10\nid: 7\nfoo: bar\ndata\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: "message".into(),
                data: String::new(),
                id: Some("7".into())
            }]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: status\ndata: {}\n").is_empty());
        assert_eq!(parser.push(b"\n").len(), 1);
    }
}
