use tasjil_drivers::sim::*;
use tasjil_drivers::*;
fn main() {
    let shot = SimCamera::new(5).capture_still().unwrap();
    image::load_from_memory(&shot.image.jpeg).unwrap().save("/tmp/face5.png").unwrap();
    let mut sizes = vec![];
    for seed in 0..20 { sizes.push(SimCamera::new(seed).capture_still().unwrap().image.jpeg.len()); }
    println!("jpeg min {} max {}", sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    let mut best = std::time::Duration::MAX; let mut png = vec![];
    for seed in 0..5 {
        let mut sc = SimScanner::new(seed);
        let t = std::time::Instant::now();
        let prints: Vec<_> = FingerPosition::ALL.iter().map(|&f| sc.capture(f).unwrap()).collect();
        best = best.min(t.elapsed());
        png.extend(prints.iter().map(|p| p.image.to_png().unwrap().len()));
    }
    println!("10 prints best {:?}; png min {} max {}", best, png.iter().min().unwrap(), png.iter().max().unwrap());
    let s: Vec<_> = (0..20).map(|s| SimSignaturePad::new(s).capture().unwrap().png.len()).collect();
    println!("sig png min {} max {}", s.iter().min().unwrap(), s.iter().max().unwrap());
}
