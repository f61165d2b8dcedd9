// Converts the composited Rgba8Unorm canvas to the output's I420 planes, each
// rendered into its own R8Unorm target:
//   fs_luma   full size:  Y' = from_rgb[0] . (R', G', B', 1)
//   fs_chroma half size:  Cb, Cr = from_rgb[1|2] . (mean of the 2x2 block's R'G'B', 1)
// from_rgb is crate::color::YuvMatrix::new(OUTPUT_COLOR).from_rgb (BT.709 limited:
// Y' = 16/255 + 219/255 (Kr R' + Kg G' + Kb B'), Cb = 128/255 + 224/255 (B' - Y)/(2 (1 - Kb)), ...).
// The conversion is affine, so converting the block mean equals averaging the
// four converted pixels, which is how the CPU backend's chroma coverage works.

struct Convert {
    y: vec4<f32>,   // from_rgb rows: r, g, b weights and the offset
    u: vec4<f32>,
    v: vec4<f32>,
};

@group(0) @binding(0) var<uniform> m: Convert;
@group(0) @binding(1) var canvas: texture_2d<f32>;

// One triangle that covers the whole target.
@vertex
fn vs_full(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    let uv = vec2<f32>(f32((vi << 1u) & 2u), f32(vi & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

// Code value rounded to nearest like the CPU's f32::round (half away from zero,
// for the non-negative values here), then stored as (code + 0.25) / 255: the
// unorm store lands on `code` whether the implementation rounds or truncates.
fn quantise(x: f32) -> f32 {
    let code = clamp(floor(x * 255.0 + 0.5), 0.0, 255.0);
    return (code + 0.25) / 255.0;
}

@fragment
fn fs_luma(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let c = textureLoad(canvas, vec2<i32>(pos.xy), 0).rgb;
    return vec4<f32>(quantise(dot(m.y, vec4<f32>(c, 1.0))), 0.0, 0.0, 1.0);
}

struct Chroma {
    @location(0) u: vec4<f32>,
    @location(1) v: vec4<f32>,
};

@fragment
fn fs_chroma(@builtin(position) pos: vec4<f32>) -> Chroma {
    let base = vec2<i32>(pos.xy) * 2;
    let c = (textureLoad(canvas, base, 0).rgb
        + textureLoad(canvas, base + vec2<i32>(1, 0), 0).rgb
        + textureLoad(canvas, base + vec2<i32>(0, 1), 0).rgb
        + textureLoad(canvas, base + vec2<i32>(1, 1), 0).rgb) * 0.25;
    let c1 = vec4<f32>(c, 1.0);
    var out: Chroma;
    out.u = vec4<f32>(quantise(dot(m.u, c1)), 0.0, 0.0, 1.0);
    out.v = vec4<f32>(quantise(dot(m.v, c1)), 0.0, 0.0, 1.0);
    return out;
}
