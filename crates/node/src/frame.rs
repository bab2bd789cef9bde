//! What travels on a ZeroMQ link between two neighbours: one JSON frame per ZeroMQ message.
//!
//! JSON, so a student with `tshark` can read the election go by. A frame that does not parse is
//! logged and dropped: peer input never panics a node.

use labctl_core::plane::PlaneMessage;
use labctl_core::Message;
use serde::{Deserialize, Serialize};

/// One frame on a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    /// "I am alive": sent on every link every heartbeat interval. The first one heard from a
    /// neighbour is also the handshake: it proves the link works both ways.
    Heartbeat {
        /// The lab the sender belongs to; a frame from another lab is refused.
        lab: String,
        /// Which run of the sender this is (a new value: it restarted).
        #[serde(default)]
        incarnation: u64,
        /// Election messages the sender has put on this link in this run: fewer arrived means
        /// some were lost (see `labctl_core::liveness`).
        #[serde(default)]
        sent: u64,
    },
    /// A control-plane message of the protocol core (Yo-Yo, SHOUT+).
    Control {
        /// The message.
        message: Message,
    },
    /// A data-plane message: requests, answers, the replicated log.
    Data {
        /// The message.
        message: PlaneMessage,
    },
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Not a frame: bad JSON, unknown kind, missing or mistyped fields.
    #[error("malformed frame ({len} bytes): {source}")]
    Malformed {
        /// The frame's size.
        len: usize,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

impl Frame {
    /// Serialize for the wire.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("frames always serialize")
    }

    /// Whether these bytes are a control frame (the encoding starts with its tag, as
    /// `control_frames_read_like_the_algorithm` pins).
    pub fn is_control(bytes: &[u8]) -> bool {
        bytes.starts_with(br#"{"frame":"control""#)
    }

    /// Parse a frame from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        serde_json::from_slice(bytes).map_err(|source| FrameError::Malformed {
            len: bytes.len(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labctl_core::Body;

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Heartbeat {
                lab: "ring6".into(),
                incarnation: 7,
                sent: 12,
            },
            Frame::Control {
                message: Message {
                    epoch: 2,
                    body: Body::YoDown {
                        iteration: 3,
                        value: 7,
                    },
                },
            },
        ];
        for frame in frames {
            assert_eq!(Frame::decode(&frame.encode()).unwrap(), frame);
        }
    }

    #[test]
    fn control_frames_read_like_the_algorithm() {
        let frame = Frame::Control {
            message: Message {
                epoch: 1,
                body: Body::Setup { id: 4 },
            },
        };
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            r#"{"frame":"control","message":{"epoch":1,"body":{"type":"setup","id":4}}}"#
        );
        assert!(Frame::is_control(&frame.encode()));
        let heartbeat = Frame::Heartbeat {
            lab: "control".into(),
            incarnation: 1,
            sent: 0,
        };
        assert!(!Frame::is_control(&heartbeat.encode()));
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for bytes in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            b"{\"frame\":\"control\"}",
            b"{\"frame\":\"launch\"}",
            b"{\"frame\":\"control\",\"message\":{\"epoch\":-1,\"body\":{\"type\":\"setup\",\"id\":1}}}",
        ] {
            assert!(Frame::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
