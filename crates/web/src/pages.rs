//! The HTML pages: tera templates, embedded at build time or loaded from a folder.
//!
//! Autoescaping is on for every template (all are `.html`): a value such as a username or a
//! message is always written escaped; no template marks user data `safe`.

use std::path::Path;

use tera::Tera;

use crate::error::WebError;

/// Every template, by name, as embedded in the binary (so it works from any folder).
const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    ("index.html", include_str!("../../../templates/index.html")),
    (
        "register.html",
        include_str!("../../../templates/register.html"),
    ),
    ("login.html", include_str!("../../../templates/login.html")),
    (
        "search.html",
        include_str!("../../../templates/search.html"),
    ),
    ("users.html", include_str!("../../../templates/users.html")),
    ("user.html", include_str!("../../../templates/user.html")),
    (
        "conversation.html",
        include_str!("../../../templates/conversation.html"),
    ),
    (
        "private_chat.html",
        include_str!("../../../templates/private_chat.html"),
    ),
    (
        "groups.html",
        include_str!("../../../templates/groups.html"),
    ),
    ("group.html", include_str!("../../../templates/group.html")),
    (
        "group_chat.html",
        include_str!("../../../templates/group_chat.html"),
    ),
];

/// The loaded templates.
pub(crate) struct Pages {
    tera: Tera,
}

impl Pages {
    /// The embedded templates, or those in `folder` (the same file names).
    pub fn load(folder: Option<&Path>) -> Result<Self, WebError> {
        let sources: Vec<(String, String)> = match folder {
            None => EMBEDDED
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string()))
                .collect(),
            Some(folder) => EMBEDDED
                .iter()
                .map(|(name, _)| {
                    let path = folder.join(name);
                    std::fs::read_to_string(&path)
                        .map(|text| (name.to_string(), text))
                        .map_err(|source| WebError::ReadTemplate { path, source })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        // All at once, so that `extends` and `include` resolve whatever the order.
        tera.add_raw_templates(sources)?;
        Ok(Pages { tera })
    }

    /// Renders template `name`.
    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, tera::Error> {
        self.tera.render(name, context)
    }
}
