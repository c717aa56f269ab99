/// What a mail server said: its reply code, the enhanced status code
/// (RFC 3463) when it gave one, and its text. The send stage reads it off
/// the wire and the store keeps the last one of each delivery, so it lives
/// below both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub text: String,
}
