//! The browser entry point: mounts [`fleet_web::app::App`] on the page's body.

fn main() {
    leptos::mount::mount_to_body(fleet_web::app::App);
}
