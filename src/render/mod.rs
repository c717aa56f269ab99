//! Pure rendering: an [`Issue`](crate::issue::Issue) in, strings out. No
//! function here touches the file system or the network; commands write
//! what these return.

mod email;
mod labels;
mod message;
mod personalize;
mod templates;
mod text;

pub use email::{render_email, EmailContext, RenderedEmail};
pub use labels::Labels;
pub use message::{build_message, MessageHeaders};
pub use personalize::{Personalized, Recipient};
pub use templates::Templates;
pub use text::{blocks_to_text, wrap_text, TEXT_WIDTH};
