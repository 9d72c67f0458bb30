//! The files a browser needs, embedded in every Tether server: the client
//! as an ES module (`/tether.js`), its TypeScript declarations
//! (`/tether.d.ts`) and the demo chat page (`/`).
//!
//! They are static text kept beside this crate and served as they are,
//! with no build step; the demo page imports `/tether.js`. A crate of their
//! own, so that the core's package holds what it embeds.

/// The browser client, an ES module with JSDoc types.
pub const CLIENT_SCRIPT: &str = include_str!("../tether.js");

/// The browser client's hand-written TypeScript declarations.
pub const CLIENT_TYPES: &str = include_str!("../tether.d.ts");

/// The demo chat page: a room, its users, the connection state.
pub const DEMO_PAGE: &str = include_str!("../demo.html");

/// The content type of [`CLIENT_SCRIPT`].
pub const JS: &str = "text/javascript; charset=utf-8";

/// The content type of [`CLIENT_TYPES`]: plain text, so that a browser
/// shows it instead of downloading it.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The content type of [`DEMO_PAGE`].
pub const HTML: &str = "text/html; charset=utf-8";
