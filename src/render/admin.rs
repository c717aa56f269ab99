//! The admin site's pages: a layout (the navigation and the logout form)
//! around a body made from one template per page. Pure: views in, HTML
//! out; every value is HTML-escaped by the registry.
//!
//! The templates are a tool's pages, not the newsletter's, so they are
//! built in and not overridable from the templates folder (as the live
//! preview's page): a broken override must not lock the editor out.

use anyhow::Context;
use handlebars::Handlebars;
use serde::Serialize;

use super::templates::escape_html;

/// The stylesheet at `/static/admin.css`.
pub const ADMIN_CSS: &str = include_str!("../../templates/admin/admin.css");
/// The script at `/static/admin.js`: live campaign progress. No inline
/// script anywhere, so the Content-Security-Policy can forbid it.
pub const ADMIN_JS: &str = include_str!("../../templates/admin/admin.js");

/// Which navigation entry is the current page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// A page seen without a session (the login page): no navigation.
    None,
    Campaigns,
    Subscribers,
    Issues,
}

/// One page: the layout's values and the body already rendered.
#[derive(Debug, Clone)]
pub struct PageView {
    pub title: String,
    pub active: Nav,
    /// The session's CSRF token, for the logout form.
    pub csrf: String,
    /// HTML from [`AdminPages::body`]; inserted as is.
    pub body_html: String,
}

#[derive(Serialize)]
struct LayoutContext<'a> {
    title: &'a str,
    csrf: &'a str,
    body_html: &'a str,
    signed_in: bool,
    campaigns: bool,
    subscribers: bool,
    issues: bool,
}

/// The compiled admin templates. Built once when the admin site starts.
pub struct AdminPages {
    registry: Handlebars<'static>,
}

impl AdminPages {
    pub fn new() -> anyhow::Result<AdminPages> {
        // Every admin template, by name. Pages of other parts of the admin
        // site add theirs here.
        let templates: &[(&str, &str)] = &[
            (
                "layout",
                include_str!("../../templates/admin/layout.html.hbs"),
            ),
            (
                "login",
                include_str!("../../templates/admin/login.html.hbs"),
            ),
            (
                "campaigns",
                include_str!("../../templates/admin/campaigns.html.hbs"),
            ),
            (
                "campaign",
                include_str!("../../templates/admin/campaign.html.hbs"),
            ),
        ];
        let mut registry = Handlebars::new();
        registry.register_escape_fn(escape_html);
        // A misspelt field is an error in the tests, not a blank on a page.
        registry.set_strict_mode(true);
        for (name, text) in templates {
            registry
                .register_template_string(name, *text)
                .with_context(|| format!("the built-in admin template {name}"))?;
        }
        Ok(AdminPages { registry })
    }

    /// The layout around `page.body_html`.
    pub fn page(&self, page: &PageView) -> anyhow::Result<String> {
        let context = LayoutContext {
            title: &page.title,
            csrf: &page.csrf,
            body_html: &page.body_html,
            signed_in: page.active != Nav::None,
            campaigns: page.active == Nav::Campaigns,
            subscribers: page.active == Nav::Subscribers,
            issues: page.active == Nav::Issues,
        };
        self.registry
            .render("layout", &context)
            .context("rendering the admin layout")
    }

    /// A page's body from its template.
    pub fn body(&self, template: &str, context: &impl Serialize) -> anyhow::Result<String> {
        self.registry
            .render(template, context)
            .with_context(|| format!("rendering the admin page {template}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_escapes_its_values_and_marks_the_current_page() {
        let pages = AdminPages::new().unwrap();
        let html = pages
            .page(&PageView {
                title: "<b>x</b>".into(),
                active: Nav::Campaigns,
                csrf: "tok\"en".into(),
                body_html: "<p id=body>ok</p>".into(),
            })
            .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(html.contains("value=\"tok&quot;en\""));
        assert!(html.contains("<p id=body>ok</p>"));
        assert!(html.contains("id=\"nav-campaigns\" href=\"/campaigns\" aria-current=\"page\""));
        assert!(!html.contains("href=\"/issues\" aria-current"));
        assert!(html.contains("id=\"logout-form\""));
        assert!(!html.contains("<script>"), "no inline script");
    }

    #[test]
    fn a_page_without_a_session_has_no_navigation() {
        let pages = AdminPages::new().unwrap();
        let html = pages
            .page(&PageView {
                title: "Log in".into(),
                active: Nav::None,
                csrf: String::new(),
                body_html: String::new(),
            })
            .unwrap();
        assert!(!html.contains("admin-nav"));
        assert!(!html.contains("logout"));
    }
}
