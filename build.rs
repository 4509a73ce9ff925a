//! Compiles the kiosk's Slint views (`ui/`) with their translations (`lang/<code>/LC_MESSAGES/tasjil.po`).
//! Debug info keeps element ids, which the headless UI tests look elements up by.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_debug_info(true)
        .with_bundled_translations("lang")
        // One msgid, one translation, whichever view shows it.
        .with_default_translation_context(slint_build::DefaultTranslationContext::None);
    if let Err(e) = slint_build::compile_with_config("ui/app.slint", config) {
        panic!("ui/app.slint does not compile: {e}");
    }
    println!("cargo:rerun-if-changed=lang");
}
