//! Fingerprint sensors through libfprint 2 (feature `libfprint`; Debian `libfprint-2-dev`).
//!
//! Owns discovery ([`sensors`]) and single-finger image capture ([`FprintScanner`]) on any libfprint
//! device that can capture images, including libfprint's `virtual_image` device used by the tests
//! (`FP_VIRTUAL_IMAGE=/path/to/socket`, set before the first [`sensors`] call). Quality is not
//! judged here: the station's quality engine scores the image.
//!
//! Vendor slap scanners (four-finger platens with their own SDKs) are not libfprint devices: they
//! implement [`crate::FingerprintScanner`] (and segment with [`crate::slap`]) in their own module
//! behind the same trait — that trait is the seam.
//!
//! Every capture has a deadline: a watchdog cancels it through a `GCancellable`, so a sensor that
//! stops answering or is unplugged gives [`CaptureError::Timeout`] or
//! [`CaptureError::Disconnected`], which the workflow retries — never a hang. After a
//! disconnection the scanner lets the device go and the next capture looks for it again in a
//! fresh enumeration (libfprint enumerates once per context), so a sensor plugged back in is used
//! without restarting the station.
//!
//! The binding is a handful of C calls written out here rather than a bindings crate: the
//! available one is unfinished and pulls in the gtk-rs stack for what is six functions.

// FFI to libfprint/GLib needs `unsafe`; it is confined to this module, and each block states
// what makes it sound.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr;
use std::sync::mpsc;
use std::time::Duration;

use crate::capture::{CaptureError, FingerCapture, FingerPosition, FingerprintScanner, GreyImage};

#[repr(C)]
struct GError {
    domain: u32,
    code: c_int,
    message: *const c_char,
}

#[repr(C)]
struct GPtrArray {
    pdata: *mut *mut c_void,
    len: c_uint,
}

type Gboolean = c_int;

#[link(name = "fprint-2")]
extern "C" {
    fn fp_context_new() -> *mut c_void;
    fn fp_context_get_devices(ctx: *mut c_void) -> *mut GPtrArray;
    fn fp_device_get_name(dev: *mut c_void) -> *const c_char;
    fn fp_device_get_driver(dev: *mut c_void) -> *const c_char;
    fn fp_device_get_device_id(dev: *mut c_void) -> *const c_char;
    fn fp_device_has_feature(dev: *mut c_void, feature: c_uint) -> Gboolean;
    fn fp_device_is_open(dev: *mut c_void) -> Gboolean;
    fn fp_device_open_sync(dev: *mut c_void, c: *mut c_void, e: *mut *mut GError) -> Gboolean;
    fn fp_device_close_sync(dev: *mut c_void, c: *mut c_void, e: *mut *mut GError) -> Gboolean;
    fn fp_device_capture_sync(
        dev: *mut c_void,
        wait_for_finger: Gboolean,
        c: *mut c_void,
        e: *mut *mut GError,
    ) -> *mut c_void;
    fn fp_device_retry_quark() -> u32;
    fn fp_device_error_quark() -> u32;
    fn fp_image_get_width(img: *mut c_void) -> c_uint;
    fn fp_image_get_height(img: *mut c_void) -> c_uint;
    fn fp_image_get_ppmm(img: *mut c_void) -> f64;
    fn fp_image_get_data(img: *mut c_void, len: *mut usize) -> *const u8;
}

#[link(name = "gobject-2.0")]
extern "C" {
    fn g_object_ref(obj: *mut c_void) -> *mut c_void;
    fn g_object_unref(obj: *mut c_void);
}

#[link(name = "glib-2.0")]
extern "C" {
    fn g_error_free(e: *mut GError);
}

#[link(name = "gio-2.0")]
extern "C" {
    fn g_cancellable_new() -> *mut c_void;
    fn g_cancellable_cancel(c: *mut c_void);
}

const FP_DEVICE_FEATURE_CAPTURE: c_uint = 1;
const FP_DEVICE_ERROR_REMOVED: c_int = 0x100;

/// A GObject reference we own (one `g_object_unref` on drop).
struct Object(*mut c_void);

impl Drop for Object {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we hold exactly one reference to a live GObject.
            unsafe { g_object_unref(self.0) }
        }
    }
}

// SAFETY: GObject reference counting is atomic, and every use of the object behind it goes
// through `&mut FprintScanner`, so it is used by one thread at a time.
unsafe impl Send for Object {}

/// A cancellable we can hand to a watchdog thread.
struct Cancellable(*mut c_void);
// SAFETY: g_cancellable_cancel is documented thread-safe; the object lives until the watchdog
// has finished with it (see `capture_image`).
unsafe impl Send for Cancellable {}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libfprint returns NUL-terminated strings owned by the device, valid while it lives.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Take a GError out, as a message and whether it means "device removed" / "try again".
fn take_error(e: *mut GError) -> (String, Kind) {
    if e.is_null() {
        return ("unknown libfprint error".into(), Kind::Other);
    }
    // SAFETY: a non-null GError set by libfprint; read, then freed once.
    unsafe {
        let msg = text((*e).message);
        let kind = if (*e).domain == fp_device_retry_quark() {
            Kind::Retry
        } else if (*e).domain == fp_device_error_quark() && (*e).code == FP_DEVICE_ERROR_REMOVED {
            Kind::Removed
        } else {
            Kind::Other
        };
        g_error_free(e);
        (msg, kind)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Retry,
    Removed,
    Other,
}

/// A libfprint device as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    pub name: String,
    pub driver: String,
    pub device_id: String,
    pub can_capture: bool,
}

/// libfprint's context (it owns the USB/udev enumeration). Replaced by a fresh one when a wanted
/// sensor is not in its list: libfprint enumerates once per context, so a sensor that was removed
/// and plugged back (or a virtual one re-created) only shows up in a new context.
struct Context(Object);

fn context() -> Result<std::sync::MutexGuard<'static, Context>, CaptureError> {
    static CTX: std::sync::OnceLock<std::sync::Mutex<Context>> = std::sync::OnceLock::new();
    let m = CTX.get_or_init(|| std::sync::Mutex::new(Context::new()));
    let ctx = m.lock().unwrap_or_else(|p| p.into_inner());
    if ctx.0 .0.is_null() {
        return Err(CaptureError::Disconnected(
            "libfprint could not start".into(),
        ));
    }
    Ok(ctx)
}

impl Context {
    fn new() -> Context {
        // SAFETY: plain constructor; a null result is kept and reported by `context`.
        Context(Object(unsafe { fp_context_new() }))
    }

    /// Enumerate afresh. Devices taken from the old context stay valid: each holds its own
    /// reference.
    fn refresh(&mut self) {
        *self = Context::new();
    }
}

fn devices(ctx: &Context) -> Vec<*mut c_void> {
    // SAFETY: the array is owned by the context (transfer none) and read immediately.
    unsafe {
        let arr = fp_context_get_devices(ctx.0 .0);
        if arr.is_null() || (*arr).pdata.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts((*arr).pdata, (*arr).len as usize).to_vec()
    }
}

fn describe(dev: *mut c_void) -> Sensor {
    // SAFETY: `dev` is a live FpDevice from the context's list.
    unsafe {
        Sensor {
            name: text(fp_device_get_name(dev)),
            driver: text(fp_device_get_driver(dev)),
            device_id: text(fp_device_get_device_id(dev)),
            can_capture: fp_device_has_feature(dev, FP_DEVICE_FEATURE_CAPTURE) != 0,
        }
    }
}

/// The fingerprint devices libfprint sees now.
pub fn sensors() -> Result<Vec<Sensor>, CaptureError> {
    let ctx = context()?;
    Ok(devices(&ctx).into_iter().map(describe).collect())
}

/// A libfprint image sensor as a [`FingerprintScanner`]. A sensor that was unplugged gives
/// [`CaptureError::Disconnected`]; the next capture looks for it again (re-enumerating) and
/// carries on when it is back.
pub struct FprintScanner {
    /// `None` after the sensor was lost, until it is found again.
    device: Option<Object>,
    sensor: Sensor,
    driver: Option<String>,
    /// Longest wait for a finger (and the image) per capture.
    pub timeout: Duration,
    pub clock: fn() -> i64,
}

impl std::fmt::Debug for FprintScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FprintScanner")
            .field("sensor", &self.sensor)
            .field("attached", &self.device.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Find and open the first capture-capable device whose driver is `driver` (any if `None`). When
/// the current list has none, or the one it has cannot be opened (a removed device lingers in
/// the list until libfprint drops it), enumerate afresh and try once more.
fn open_device(driver: Option<&str>) -> Result<(Object, Sensor), CaptureError> {
    match try_open(driver, false) {
        Ok(found) => Ok(found),
        Err(_) => try_open(driver, true),
    }
}

fn try_open(driver: Option<&str>, refresh: bool) -> Result<(Object, Sensor), CaptureError> {
    let mut ctx = context()?;
    if refresh {
        ctx.refresh();
    }
    let dev = devices(&ctx)
        .into_iter()
        .find(|&d| {
            let s = describe(d);
            s.can_capture && driver.is_none_or(|want| s.driver == want)
        })
        .ok_or_else(|| {
            CaptureError::Disconnected(match driver {
                Some(d) => format!("no libfprint {d} sensor is attached"),
                None => "no fingerprint sensor is attached".into(),
            })
        })?;
    let sensor = describe(dev);
    // SAFETY: take our own reference so the device outlives any re-enumeration.
    let device = Object(unsafe { g_object_ref(dev) });
    drop(ctx);
    let mut err: *mut GError = ptr::null_mut();
    // SAFETY: live device, no cancellable, error out-pointer initialised to null.
    let ok = unsafe {
        fp_device_is_open(device.0) != 0
            || fp_device_open_sync(device.0, ptr::null_mut(), &mut err) != 0
    };
    if !ok {
        let (msg, _) = take_error(err);
        return Err(CaptureError::Disconnected(format!(
            "{} (libfprint {}): {msg}",
            sensor.name, sensor.driver
        )));
    }
    Ok((device, sensor))
}

fn close_device(device: &Object) {
    let mut err: *mut GError = ptr::null_mut();
    // SAFETY: live device; closing a device that vanished just reports an error, freed here.
    unsafe {
        if fp_device_is_open(device.0) != 0
            && fp_device_close_sync(device.0, ptr::null_mut(), &mut err) == 0
        {
            let _ = take_error(err);
        }
    }
}

impl FprintScanner {
    /// Open the first capture-capable device whose driver is `driver` (any driver if `None`).
    pub fn open(driver: Option<&str>) -> Result<FprintScanner, CaptureError> {
        let (device, sensor) = open_device(driver)?;
        Ok(FprintScanner {
            device: Some(device),
            sensor,
            driver: driver.map(str::to_string),
            timeout: Duration::from_secs(30),
            clock: crate::sim::system_clock,
        })
    }

    pub fn sensor(&self) -> &Sensor {
        &self.sensor
    }

    /// Wait for a finger and return the sensor's image.
    pub fn capture_image(&mut self) -> Result<GreyImage, CaptureError> {
        let device = match self.device.take() {
            Some(d) => d,
            None => {
                // The lost device may linger in the old enumeration (and even open): look afresh.
                let (device, sensor) = try_open(self.driver.as_deref(), true)?;
                self.sensor = sensor;
                device
            }
        };
        let result = self.capture_on(&device);
        match &result {
            // The sensor is gone (or broke): let it go; the next capture looks for it again.
            Err(CaptureError::Disconnected(_)) => close_device(&device),
            _ => self.device = Some(device),
        }
        result
    }

    fn capture_on(&self, device: &Object) -> Result<GreyImage, CaptureError> {
        // SAFETY: plain constructor.
        let cancellable = Object(unsafe { g_cancellable_new() });
        let (done, wait) = mpsc::channel::<()>();
        let watchdog = {
            let c = Cancellable(cancellable.0);
            let timeout = self.timeout;
            std::thread::spawn(move || {
                let c = c;
                if wait.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                    // SAFETY: the cancellable is alive: its owner joins this thread first.
                    unsafe { g_cancellable_cancel(c.0) }
                    true
                } else {
                    false
                }
            })
        };
        let mut err: *mut GError = ptr::null_mut();
        // SAFETY: open device, live cancellable, error out-pointer initialised to null.
        let image = Object(unsafe { fp_device_capture_sync(device.0, 1, cancellable.0, &mut err) });
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        drop(cancellable);
        if image.0.is_null() {
            let (msg, kind) = take_error(err);
            let name = &self.sensor.name;
            return Err(match kind {
                _ if timed_out => CaptureError::Timeout(name.clone()),
                Kind::Retry => CaptureError::NoFinger(format!("{name}: {msg}")),
                Kind::Removed | Kind::Other => CaptureError::Disconnected(format!(
                    "{name} (libfprint {}): {msg}",
                    self.sensor.driver
                )),
            });
        }
        // SAFETY: a live FpImage we own; its data buffer lives as long as the image, and is
        // copied out before `image` drops.
        unsafe {
            let width = fp_image_get_width(image.0);
            let height = fp_image_get_height(image.0);
            let ppmm = fp_image_get_ppmm(image.0);
            let mut len = 0usize;
            let data = fp_image_get_data(image.0, &mut len);
            if data.is_null() || len != width as usize * height as usize {
                return Err(CaptureError::PixelCount { width, height, len });
            }
            Ok(GreyImage {
                width,
                height,
                ppi: ppi_from_ppmm(ppmm),
                pixels: std::slice::from_raw_parts(data, len).to_vec(),
            })
        }
    }
}

/// libfprint reports pixels per millimetre (a nominal 19.685 for 500 ppi sensors).
fn ppi_from_ppmm(ppmm: f64) -> u16 {
    if ppmm.is_finite() && ppmm > 1.0 {
        (ppmm * 25.4).round().clamp(100.0, 2000.0) as u16
    } else {
        crate::capture::DEFAULT_PPI
    }
}

impl Drop for FprintScanner {
    fn drop(&mut self) {
        if let Some(device) = &self.device {
            close_device(device);
        }
    }
}

impl FingerprintScanner for FprintScanner {
    fn name(&self) -> String {
        format!("{} (libfprint {})", self.sensor.name, self.sensor.driver)
    }

    fn capture(&mut self, position: FingerPosition) -> Result<FingerCapture, CaptureError> {
        let image = self.capture_image()?;
        Ok(FingerCapture {
            position,
            image,
            // The station's quality engine replaces this; the sensor gives no score.
            quality: 0,
            captured_at_ms: (self.clock)(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppmm_converts_to_ppi_with_a_safe_default() {
        assert_eq!(ppi_from_ppmm(19.685), 500);
        assert_eq!(ppi_from_ppmm(0.0), crate::capture::DEFAULT_PPI);
        assert_eq!(ppi_from_ppmm(f64::NAN), crate::capture::DEFAULT_PPI);
    }
}
