//! CSV cells that a spreadsheet would run as formulas (OWASP, "CSV
//! Injection"): anyone can set a name through the public form, and an
//! export is opened in a spreadsheet by whoever runs the list.

use std::borrow::Cow;

/// What a cell may not start with: `=`, `+`, `-` and `@` start a formula;
/// tab and carriage return hide one after leading whitespace.
fn starts_like_a_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Whether a cell gets a `'` in front: it looks like a formula, or it is
/// already a `'` in front of one (a name typed as `'=x` must come back as
/// `'=x`, not lose its quote on import).
fn needs_quote(cell: &str) -> bool {
    starts_like_a_formula(cell) || cell.strip_prefix('\'').is_some_and(needs_quote)
}

/// The cell with a `'` in front when it looks like a formula, so a
/// spreadsheet shows it as text.
pub fn neutralise_formula(cell: Cow<'_, str>) -> Cow<'_, str> {
    if needs_quote(&cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        cell
    }
}

/// Undoes [`neutralise_formula`] on import, so an export imports as it was.
pub fn restore_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_quote(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_restored() {
        for cell in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            let out = neutralise_formula(Cow::Borrowed(cell));
            assert_eq!(out, format!("'{cell}"));
            assert_eq!(restore_formula(&out), cell);
        }
        // Found by the csv_row fuzz target: a name that starts with the
        // quote itself must survive the round trip too.
        for cell in ["'=HYPOOO", "''+1", "'-x"] {
            let out = neutralise_formula(Cow::Borrowed(cell));
            assert_eq!(out, format!("'{cell}"));
            assert_eq!(restore_formula(&out), cell);
        }
        for cell in ["Ann", "'quoted", "a=b", ""] {
            assert_eq!(neutralise_formula(Cow::Borrowed(cell)), cell);
            assert_eq!(restore_formula(cell), cell);
        }
    }
}
