//! The built-in templates, embedded in the binary, and the user's overrides.

use std::path::Path;

use anyhow::Context;
use handlebars::Handlebars;

/// Every template Herald uses. A file of the same name in the configured
/// templates folder replaces the built-in one.
const BUILTIN: &[(&str, &str)] = &[
    (
        "email.mjml.hbs",
        include_str!("../../templates/email.mjml.hbs"),
    ),
    (
        "email.txt.hbs",
        include_str!("../../templates/email.txt.hbs"),
    ),
    (
        "index.html.hbs",
        include_str!("../../templates/index.html.hbs"),
    ),
    (
        "issue.html.hbs",
        include_str!("../../templates/issue.html.hbs"),
    ),
    (
        "issue_content.html.hbs",
        include_str!("../../templates/issue_content.html.hbs"),
    ),
    ("style.css", include_str!("../../templates/style.css")),
    (
        "confirm.mjml.hbs",
        include_str!("../../templates/confirm.mjml.hbs"),
    ),
    (
        "confirm.txt.hbs",
        include_str!("../../templates/confirm.txt.hbs"),
    ),
    (
        "welcome.mjml.hbs",
        include_str!("../../templates/welcome.mjml.hbs"),
    ),
    (
        "welcome.txt.hbs",
        include_str!("../../templates/welcome.txt.hbs"),
    ),
    (
        "subscriber_page.html.hbs",
        include_str!("../../templates/subscriber_page.html.hbs"),
    ),
];

pub struct Templates {
    /// MJML and HTML templates: values are HTML-escaped.
    markup: Handlebars<'static>,
    /// Plain-text templates: values go in as they are.
    plain: Handlebars<'static>,
}

impl Templates {
    pub fn builtin() -> Self {
        Self::from_sources(BUILTIN.iter().map(|(name, text)| (*name, text.to_string())))
            .expect("built-in templates compile")
    }

    /// Built-ins, each replaced by `dir/<name>` where that file exists.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        for (name, builtin) in BUILTIN {
            let path = dir.join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => builtin.to_string(),
                Err(e) => {
                    return Err(e).with_context(|| format!("reading template {}", path.display()))
                }
            };
            sources.push((*name, text));
        }
        Self::from_sources(sources.into_iter())
            .with_context(|| format!("in templates folder {}", dir.display()))
    }

    /// Every file in `dir` that would replace a built-in template, whether
    /// or not it exists: what a watcher of the templates folder looks at.
    pub fn override_paths(dir: &Path) -> Vec<std::path::PathBuf> {
        BUILTIN.iter().map(|(name, _)| dir.join(name)).collect()
    }

    fn from_sources(sources: impl Iterator<Item = (&'static str, String)>) -> anyhow::Result<Self> {
        let mut markup = Handlebars::new();
        markup.register_escape_fn(escape_html);
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        for (name, text) in sources {
            let registry = if name.contains(".txt.") {
                &mut plain
            } else {
                &mut markup
            };
            registry
                .register_template_string(name, text)
                .with_context(|| format!("template {name}"))?;
        }
        Ok(Templates { markup, plain })
    }

    pub fn render(&self, name: &str, data: &impl serde::Serialize) -> anyhow::Result<String> {
        let registry = if name.contains(".txt.") {
            &self.plain
        } else {
            &self.markup
        };
        registry
            .render(name, data)
            .with_context(|| format!("rendering template {name}"))
    }
}

/// Handlebars' own escaper also rewrites `=` and backticks, which turns
/// `?a=1` in a link into `?a&#x3D;1`: valid, but needlessly unreadable.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
