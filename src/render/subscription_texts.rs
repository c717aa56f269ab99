use serde::Serialize;

/// The fixed words of the subscribe, confirm and unsubscribe pages and of
/// the confirmation mail, in the site's language: Chinese for `zh*`,
/// English otherwise. `{site}` in a text is the newsletter's title.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionTexts {
    pub subscribe_title: &'static str,
    pub subscribe_intro: &'static str,
    pub email_label: &'static str,
    pub email_placeholder: &'static str,
    pub name_label: &'static str,
    pub subscribe_button: &'static str,
    pub invalid_email: &'static str,
    pub invalid_name: &'static str,
    pub check_inbox_title: &'static str,
    pub check_inbox_body: &'static str,
    pub rate_limited_title: &'static str,
    pub rate_limited_body: &'static str,
    pub confirm_title: &'static str,
    pub confirm_prompt: &'static str,
    pub confirm_button: &'static str,
    pub confirmed_title: &'static str,
    pub confirmed_body: &'static str,
    pub already_confirmed_body: &'static str,
    pub link_invalid_title: &'static str,
    pub link_unknown_body: &'static str,
    pub link_expired_body: &'static str,
    pub link_used_body: &'static str,
    pub subscribe_again: &'static str,
    pub unsubscribe_title: &'static str,
    pub unsubscribe_prompt: &'static str,
    pub unsubscribe_button: &'static str,
    pub unsubscribed_title: &'static str,
    pub unsubscribed_body: &'static str,
    pub unsubscribe_unknown_body: &'static str,
    pub server_error_title: &'static str,
    pub server_error_body: &'static str,
    pub confirm_subject: &'static str,
    pub confirm_mail_intro: &'static str,
    /// Ends a sentence: "." or the full-width "。".
    pub sentence_end: &'static str,
    /// Ends a label before its value: ":" or the full-width "：", so that
    /// Chinese text does not mix half- and full-width punctuation.
    pub label_end: &'static str,
    pub confirm_mail_link_hint: &'static str,
    pub confirm_mail_expiry_before: &'static str,
    pub confirm_mail_expiry_after: &'static str,
    pub confirm_mail_ignore: &'static str,
    pub confirm_mail_sent_to: &'static str,
    pub welcome_subject: &'static str,
    pub welcome_title: &'static str,
    pub welcome_body: &'static str,
    pub welcome_archive: &'static str,
    pub welcome_unsubscribe: &'static str,
}

impl SubscriptionTexts {
    pub fn for_language(language: &str) -> &'static SubscriptionTexts {
        if language.to_ascii_lowercase().starts_with("zh") {
            &CHINESE
        } else {
            &ENGLISH
        }
    }
}

static ENGLISH: SubscriptionTexts = SubscriptionTexts {
    subscribe_title: "Subscribe",
    subscribe_intro: "Get every issue by email. We will send you a link to confirm your address first.",
    email_label: "Email address",
    email_placeholder: "you@example.com",
    name_label: "Name (optional)",
    subscribe_button: "Subscribe",
    invalid_email: "Please enter a valid email address.",
    invalid_name: "The name must be at most 100 characters, without control characters.",
    check_inbox_title: "Check your inbox",
    // The same words whether the address is new, pending or already on the
    // list: the form must not tell anyone who is subscribed.
    check_inbox_body: "If this address can be subscribed, a confirmation link is on its way to it. Open the link to finish subscribing.",
    rate_limited_title: "Too many requests",
    rate_limited_body: "Please wait a minute and try again.",
    confirm_title: "Confirm your subscription",
    confirm_prompt: "Press the button to confirm your subscription.",
    confirm_button: "Confirm subscription",
    confirmed_title: "You are subscribed",
    confirmed_body: "Thank you. The next issue will arrive in your inbox.",
    already_confirmed_body: "This subscription is already confirmed. There is nothing more to do.",
    link_invalid_title: "This link does not work",
    link_unknown_body: "This confirmation link is not valid. It may be incomplete: copy the whole link from the mail.",
    link_expired_body: "This confirmation link has expired.",
    link_used_body: "This confirmation link has already been used.",
    subscribe_again: "Subscribe again",
    unsubscribe_title: "Unsubscribe",
    unsubscribe_prompt: "Press the button to stop receiving this newsletter at",
    unsubscribe_button: "Unsubscribe",
    unsubscribed_title: "You are unsubscribed",
    unsubscribed_body: "You will receive no more issues. If you change your mind, you can subscribe again.",
    unsubscribe_unknown_body: "This unsubscribe link is not known. It may be incomplete: copy the whole link from the mail.",
    server_error_title: "Something went wrong",
    server_error_body: "Please try again in a few minutes.",
    confirm_subject: "Confirm your subscription to {site}",
    confirm_mail_intro: "Someone, hopefully you, asked to subscribe this address to",
    sentence_end: ".",
    label_end: ":",
    confirm_mail_link_hint: "If the button does not work, open this link:",
    confirm_mail_expiry_before: "The link is valid for ",
    confirm_mail_expiry_after: " hours.",
    confirm_mail_ignore: "If you did not ask for this, ignore this mail: without a confirmation you will receive nothing more.",
    confirm_mail_sent_to: "This mail was sent to",
    welcome_subject: "Welcome to {site}",
    welcome_title: "You are subscribed",
    welcome_body: "Thank you for confirming. The next issue will come to this address; until then, every past issue is in the archive.",
    welcome_archive: "Read the archive",
    welcome_unsubscribe: "Changed your mind? Unsubscribe",
};

static CHINESE: SubscriptionTexts = SubscriptionTexts {
    subscribe_title: "订阅",
    subscribe_intro: "每期通过邮件送达。我们会先发一封邮件，请点击其中的链接确认地址。",
    email_label: "邮箱地址",
    email_placeholder: "you@example.com",
    name_label: "称呼（可选）",
    subscribe_button: "订阅",
    invalid_email: "请输入有效的邮箱地址。",
    invalid_name: "称呼最多 100 个字符，且不能包含控制字符。",
    check_inbox_title: "请查收邮件",
    check_inbox_body: "如果该地址可以订阅，确认链接已经发往该邮箱。打开链接即可完成订阅。",
    rate_limited_title: "请求过于频繁",
    rate_limited_body: "请稍等一分钟再试。",
    confirm_title: "确认订阅",
    confirm_prompt: "点击下面的按钮确认订阅。",
    confirm_button: "确认订阅",
    confirmed_title: "订阅成功",
    confirmed_body: "谢谢！下一期将发送到你的邮箱。",
    already_confirmed_body: "该订阅已经确认，无需其他操作。",
    link_invalid_title: "链接无效",
    link_unknown_body: "该确认链接无效，可能不完整：请复制邮件中的完整链接。",
    link_expired_body: "该确认链接已过期。",
    link_used_body: "该确认链接已经使用过。",
    subscribe_again: "重新订阅",
    unsubscribe_title: "退订",
    unsubscribe_prompt: "点击下面的按钮，停止向以下地址发送本刊：",
    unsubscribe_button: "退订",
    unsubscribed_title: "已退订",
    unsubscribed_body: "你将不会再收到本刊。如果改变主意，可以重新订阅。",
    unsubscribe_unknown_body: "无法识别该退订链接，可能不完整：请复制邮件中的完整链接。",
    server_error_title: "出错了",
    server_error_body: "请过几分钟再试。",
    confirm_subject: "请确认订阅「{site}」",
    confirm_mail_intro: "有人（希望是你）请求用这个地址订阅",
    sentence_end: "。",
    label_end: "：",
    confirm_mail_link_hint: "如果按钮无法点击，请打开这个链接：",
    confirm_mail_expiry_before: "链接在 ",
    confirm_mail_expiry_after: " 小时内有效。",
    confirm_mail_ignore: "如果这不是你的操作，请忽略本邮件：未经确认，你不会再收到任何邮件。",
    confirm_mail_sent_to: "本邮件发送至",
    welcome_subject: "欢迎订阅「{site}」",
    welcome_title: "订阅成功",
    welcome_body: "感谢确认。下一期会发到这个地址；在那之前，往期内容都在归档里。",
    welcome_archive: "阅读往期",
    welcome_unsubscribe: "改变主意了？退订",
};

#[cfg(test)]
/// Half-width punctuation touching a Chinese character (ignoring
/// spaces): "确认:" or "( 链接": Chinese text takes the full-width forms.
pub(crate) fn mixed_punctuation(text: &str) -> Vec<String> {
    let is_cjk = |c: char| matches!(c, '\u{3000}'..='\u{303f}' | '\u{4e00}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}');
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for (at, c) in chars.iter().enumerate() {
        if !matches!(c, ',' | ':' | ';' | '!' | '?' | '(' | ')') {
            continue;
        }
        let before = chars[..at].iter().rev().find(|c| **c != ' ');
        let after = chars[at + 1..].iter().find(|c| **c != ' ');
        if before.is_some_and(|c| is_cjk(*c)) || after.is_some_and(|c| is_cjk(*c)) {
            let start = at.saturating_sub(8);
            found.push(chars[start..(at + 8).min(chars.len())].iter().collect());
        }
    }
    found
}

/// The text of an HTML mail's body as a reader sees it: tags, and the
/// head with its CSS, left out.
#[cfg(test)]
pub(crate) fn visible_text(html: &str) -> String {
    let body = html.split("<body").nth(1).unwrap_or_default();
    let mut visible = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => visible.push(c),
            _ => {}
        }
    }
    visible
}
