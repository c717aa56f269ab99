//! A DKIM verifier for the tests, written from RFC 6376 (relaxed/relaxed
//! canonicalization) and RFC 8463 (Ed25519-SHA256), independently of the
//! signer: it checks a received message's body hash and signature with the
//! public half of the test key, as a receiving server would.

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The public key of the test key (an Ed25519 seed of 32 bytes of 7).
pub fn test_key() -> VerifyingKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key()
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Runs of spaces and tabs as one space.
fn collapse_wsp(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_wsp = false;
    for c in text.chars() {
        if is_wsp(c) {
            in_wsp = true;
        } else {
            if in_wsp {
                out.push(' ');
            }
            in_wsp = false;
            out.push(c);
        }
    }
    if in_wsp {
        out.push(' ');
    }
    out
}

/// RFC 6376 §3.4.2: name lowercased, value unfolded, whitespace collapsed
/// and trimmed.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    format!(
        "{}:{}\r\n",
        name.trim().to_ascii_lowercase(),
        collapse_wsp(&unfolded).trim()
    )
}

/// RFC 6376 §3.4.4: whitespace collapsed and trailing whitespace dropped on
/// every line, empty lines at the end dropped.
fn relaxed_body(body: &str) -> String {
    let mut lines: Vec<String> = body
        .split("\r\n")
        .map(|line| collapse_wsp(line).trim_end().to_string())
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

/// Verifies the DKIM-Signature of `message` with `key`.
pub fn verify(message: &[u8], key: &VerifyingKey) -> Result<(), String> {
    let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no blank line after the headers")?;
    // Headers as (name, value with its folding), in order.
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().ok_or("a continuation line first")?;
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').ok_or("a header without a colon")?;
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let (signature_name, signature_value) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("DKIM-Signature"))
        .cloned()
        .ok_or("no DKIM-Signature")?;
    let tags: Vec<(String, String)> = signature_value
        .replace(['\r', '\n', ' ', '\t'], "")
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tag = |name: &str| {
        tags.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {name}= tag"))
    };
    if tag("a")? != "ed25519-sha256" || tag("c")? != "relaxed/relaxed" {
        return Err(format!(
            "a={} c={}: not what this verifier reads",
            tag("a")?,
            tag("c")?
        ));
    }

    let body_hash =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(relaxed_body(body)));
    if body_hash != tag("bh")? {
        return Err(format!("body hash {body_hash} is not bh={}", tag("bh")?));
    }

    // Each name in h= takes the last instance not yet used (§5.4.2); a
    // name with none left adds nothing.
    let mut used = vec![false; headers.len()];
    let mut signed = String::new();
    for name in tag("h")?.split(':') {
        if let Some(at) = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].0.trim().eq_ignore_ascii_case(name))
        {
            used[at] = true;
            signed.push_str(&relaxed_header(&headers[at].0, &headers[at].1));
        }
    }
    // The signature header itself, its b= emptied, without the final CRLF.
    // The b= tag's value: the segment between semicolons whose name is b.
    let mut b_range = None;
    let mut start = 0;
    for segment in signature_value.split(';') {
        let name = segment.split('=').next().unwrap_or("");
        if name.trim_matches([' ', '\t', '\r', '\n']) == "b" {
            let value_at = start + segment.find('=').map_or(0, |at| at + 1);
            b_range = Some((value_at, start + segment.len()));
        }
        start += segment.len() + 1;
    }
    let (b_start, b_end) = b_range.ok_or("no b= in the signature")?;
    let emptied = format!(
        "{}{}",
        &signature_value[..b_start],
        &signature_value[b_end..]
    );
    let own = relaxed_header(&signature_name, &emptied);
    signed.push_str(own.trim_end_matches("\r\n"));

    let signature = base64::engine::general_purpose::STANDARD
        .decode(tag("b")?)
        .map_err(|e| e.to_string())?;
    let signature = Signature::from_slice(&signature).map_err(|e| e.to_string())?;
    key.verify(&Sha256::digest(signed.as_bytes()), &signature)
        .map_err(|e| format!("the signature does not verify: {e}"))
}
