//! CSV cells that a spreadsheet would run as formulas (OWASP, "CSV
//! Injection"): anyone can set a name through the public form, and an
//! export is opened in a spreadsheet by whoever runs the list.

use std::borrow::Cow;

/// What a cell may not start with: `=`, `+`, `-` and `@` start a formula;
/// tab and carriage return hide one after leading whitespace.
fn starts_like_a_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// The cell with a `'` in front when it looks like a formula, so a
/// spreadsheet shows it as text.
pub fn neutralise_formula(cell: Cow<'_, str>) -> Cow<'_, str> {
    if starts_like_a_formula(&cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        cell
    }
}

/// Undoes [`neutralise_formula`] on import, so an export imports as it was.
pub fn restore_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if starts_like_a_formula(rest) => rest,
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
        for cell in ["Ann", "'quoted", "a=b", ""] {
            assert_eq!(neutralise_formula(Cow::Borrowed(cell)), cell);
            assert_eq!(restore_formula(cell), cell);
        }
    }
}
