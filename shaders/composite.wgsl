// Composites one scene into the Rgba8Unorm canvas, one quad per draw, in the
// order the CPU backend paints its Y'CbCr planes (src/render/cpu/mod.rs):
//   fs_fill    tile background (opaque, no blending)
//   fs_video   a Y'CbCr source window scaled into its destination rectangle
//   fs_sprite  a premultiplied RGBA overlay (blend One, OneMinusSrcAlpha)
//   fs_chrome  rounded corners and the inset border (blend One, OneMinusSrcAlpha)
// Colours are plain numbers end to end: no sRGB transfer anywhere.

// One draw's parameters, at a dynamic offset in a shared uniform buffer.
// Field use per entry point is noted; unused fields are zero.
struct Draw {
    rect: vec4<f32>,    // quad: x, y, w, h in output pixels (sprite: its origin and size)
    output: vec4<f32>,  // output width, height
    color: vec4<f32>,   // fill: tile background; chrome: border colour
    page: vec4<f32>,    // chrome: scene background
    tile: vec4<f32>,    // chrome: tile rect; video: destination rect (x, y, w, h)
    shape: vec4<f32>,   // chrome: corner radius, border width, edge band width
    win: vec4<f32>,     // video: source window x, y, w, h in luma texels
    tex: vec4<f32>,     // video: luma texture w, h; chroma texture w, h
    m0: vec4<f32>,      // video: rows of YuvMatrix::to_rgb of the source's ColorSpace,
    m1: vec4<f32>,      //        r|g|b = row . (y, u, v, 1), codes normalised to 0..1
    m2: vec4<f32>,
    flags: vec4<f32>,   // video: x = 1 for NV12 (U, V interleaved in one Rg8 texture),
                        //        y = 1 when the window maps 1:1 onto the destination
};

@group(0) @binding(0) var<uniform> d: Draw;

// Video planes: I420 binds Y, U, V (R8Unorm); NV12 binds Y and UV (Rg8Unorm) twice.
@group(1) @binding(0) var plane_y: texture_2d<f32>;
@group(1) @binding(1) var plane_u: texture_2d<f32>;
@group(1) @binding(2) var plane_v: texture_2d<f32>;
@group(1) @binding(3) var smp: sampler;
// Overlay sprite (its own bind group layout; a distinct binding number keeps the
// module free of aliased resources).
@group(1) @binding(4) var sprite: texture_2d<f32>;

// Output pixels to clip space: x right, y down in pixels; y up in NDC.
fn clip_pos(p: vec2<f32>) -> vec4<f32> {
    return vec4<f32>(p.x / d.output.x * 2.0 - 1.0, 1.0 - p.y / d.output.y * 2.0, 0.0, 1.0);
}

// Corner `i` (0..6, two triangles) of the unit square.
fn corner(i: u32) -> vec2<f32> {
    var c = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    return c[i];
}

@vertex
fn vs_quad(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    return clip_pos(d.rect.xy + corner(vi) * d.rect.zw);
}

// Chrome touches only a band along the tile's edges (as the CPU's sparse mask:
// radius or border plus 2 pixels); everything inside it has body 1 and border 0,
// which leaves the canvas unchanged. Four strips, one per instance, never overlap:
// top and bottom span the full width, left and right the rows between.
@vertex
fn vs_chrome(@builtin(vertex_index) vi: u32, @builtin(instance_index) ii: u32) -> @builtin(position) vec4<f32> {
    let t = d.tile;
    let b = d.shape.z; // at most half the tile's width and height (set on the CPU)
    var r: vec4<f32>;
    switch ii {
        case 0u: { r = vec4<f32>(t.x, t.y, t.z, b); }
        case 1u: { r = vec4<f32>(t.x, t.y + t.w - b, t.z, b); }
        case 2u: { r = vec4<f32>(t.x, t.y + b, b, t.w - 2.0 * b); }
        default: { r = vec4<f32>(t.x + t.z - b, t.y + b, b, t.w - 2.0 * b); }
    }
    return clip_pos(r.xy + corner(vi) * r.zw);
}

@fragment
fn fs_fill() -> @location(0) vec4<f32> {
    return vec4<f32>(d.color.rgb, 1.0);
}

// Video. Output pixel i of the destination (centre i + 0.5) reads the source at
// window.xy + (i + 0.5) * window.wh / dest.wh: the centre-aligned mapping swscale
// uses. Luma is sampled per pixel; chroma once per 2x2 block, at the block's
// centre, as swscale scales the half-size chroma planes of I420 on its own grid,
// so a 1:1 copy reproduces the source's chroma exactly. Coordinates are clamped
// to the window's outer texel centres so a crop never bleeds in cropped-off texels.
@fragment
fn fs_video(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let rel = pos.xy - d.tile.xy;             // (i + 0.5, j + 0.5) inside the destination
    let scale = d.win.zw / d.tile.zw;         // source texels per output pixel
    let block = floor(rel * 0.5) + 0.5;       // chroma sample centre, in destination chroma units
    let cwin = d.win * 0.5;                   // window in chroma texels

    var y: f32;
    var su: vec4<f32>;
    var sv: vec4<f32>;
    if d.flags.y > 0.5 {
        // 1:1 (the CPU's plain row copy): the sampled points are texel centres,
        // so fetching the texels gives the same values without filtering.
        y = textureLoad(plane_y, vec2<i32>(d.win.xy + rel), 0).r;
        let tc = vec2<i32>(cwin.xy + block);
        su = textureLoad(plane_u, tc, 0);
        sv = textureLoad(plane_v, tc, 0);
    } else {
        let ly = clamp(d.win.xy + rel * scale, d.win.xy + 0.5, d.win.xy + d.win.zw - 0.5);
        y = textureSampleLevel(plane_y, smp, ly / d.tex.xy, 0.0).r;
        let lc = clamp(cwin.xy + block * scale, cwin.xy + 0.5, cwin.xy + cwin.zw - 0.5);
        su = textureSampleLevel(plane_u, smp, lc / d.tex.zw, 0.0);
        sv = textureSampleLevel(plane_v, smp, lc / d.tex.zw, 0.0);
    }
    let u = su.r;
    let v = select(sv.r, su.g, d.flags.x > 0.5);

    // R'G'B' = YuvMatrix::to_rgb * (Y', Cb, Cr, 1) (see src/color.rs), clamped to 0..1.
    let yuv1 = vec4<f32>(y, u, v, 1.0);
    let rgb = vec3<f32>(dot(d.m0, yuv1), dot(d.m1, yuv1), dot(d.m2, yuv1));
    return vec4<f32>(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}

// Overlay: sprite texels 1:1 at the quad's origin (even pixels, place_overlay),
// already premultiplied; clipped to the tile by the scissor rectangle.
@fragment
fn fs_sprite(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let texel = vec2<i32>(floor(pos.xy - d.rect.xy));
    return textureLoad(sprite, texel, 0);
}

// Twin of crate::scene::rounded_box_sdf: signed distance from p to the edge of
// a w x h box with corners of radius r (negative inside).
fn rounded_box_sdf(p: vec2<f32>, size: vec2<f32>, radius: f32) -> f32 {
    let r = max(min(min(radius, size.x / 2.0), size.y / 2.0), 0.0);
    let q = abs(p - size / 2.0) - (size / 2.0 - vec2<f32>(r));
    let outside = length(max(q, vec2<f32>(0.0)));
    return outside + min(max(q.x, q.y), 0.0) - r;
}

// Chrome, as crate::scene::tile_chrome at the pixel centre (x + 0.5, y + 0.5)
// relative to the tile's top-left:
//   body   = clamp(0.5 - sdf(tile), 0, 1)
//   border = clamp(0.5 + sdf(tile inset by the border width, radius - width), 0, 1)
// The CPU computes out = lerp(page, lerp(content, border_colour, border), body).
// With premultiplied blending out = src + dst * (1 - A), which is that with
//   src = border_colour * border * body + page * (1 - body)
//   A   = 1 - (1 - border) * body.
@fragment
fn fs_chrome(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let p = pos.xy - d.tile.xy;
    let size = d.tile.zw;
    let radius = d.shape.x;
    let bw = d.shape.y;
    let body = clamp(0.5 - rounded_box_sdf(p, size, radius), 0.0, 1.0);
    var border = 0.0;
    if bw > 0.0 {
        let inner = rounded_box_sdf(p - vec2<f32>(bw), size - vec2<f32>(2.0 * bw), max(radius - bw, 0.0));
        border = clamp(0.5 + inner, 0.0, 1.0);
    }
    let rgb = d.color.rgb * (border * body) + d.page.rgb * (1.0 - body);
    return vec4<f32>(rgb, 1.0 - (1.0 - border) * body);
}
