use serde::Serialize;

/// The fixed words of every page and mail, in the site's language: Chinese
/// for `zh*`, English otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    pub view_in_browser: &'static str,
    pub unsubscribe: &'static str,
    pub authors: &'static str,
    pub editor: &'static str,
    pub sent_to: &'static str,
    pub previous: &'static str,
    pub next: &'static str,
    pub archive: &'static str,
    pub subscribe: &'static str,
    pub email_label: &'static str,
    pub email_placeholder: &'static str,
    pub name_label: &'static str,
    pub name_placeholder: &'static str,
    pub feeds: &'static str,
    /// The label of the honeypot field; only bots that fill every field see it.
    pub honeypot: &'static str,
    /// Between the names of a list of authors.
    pub list_separator: &'static str,
}

impl Labels {
    pub fn for_language(language: &str) -> &'static Labels {
        if language.to_ascii_lowercase().starts_with("zh") {
            &CHINESE
        } else {
            &ENGLISH
        }
    }
}

static ENGLISH: Labels = Labels {
    view_in_browser: "View in browser",
    unsubscribe: "Unsubscribe",
    authors: "Authors",
    editor: "Editor",
    sent_to: "This issue was sent to",
    previous: "Previous issue",
    next: "Next issue",
    archive: "All issues",
    subscribe: "Subscribe",
    email_label: "Email address",
    email_placeholder: "you@example.com",
    name_label: "Name (optional)",
    name_placeholder: "Your name",
    feeds: "Feeds",
    honeypot: "Leave this field empty",
    list_separator: ", ",
};

static CHINESE: Labels = Labels {
    view_in_browser: "在浏览器中查看",
    unsubscribe: "退订",
    authors: "本期作者",
    editor: "编辑",
    sent_to: "本期发送至",
    previous: "上一期",
    next: "下一期",
    archive: "往期",
    subscribe: "订阅",
    email_label: "邮箱地址",
    email_placeholder: "you@example.com",
    name_label: "称呼（可选）",
    name_placeholder: "称呼",
    feeds: "订阅源",
    honeypot: "此栏请留空",
    list_separator: "、",
};
