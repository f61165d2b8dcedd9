//! The wgpu backend. Composites a scene into an Rgba8Unorm canvas with the
//! shaders in `shaders/composite.wgsl`, converts it to I420 (BT.709 limited)
//! with `shaders/rgba_to_yuv.wgsl` into three R8Unorm targets, and reads the
//! planes back through two alternating mappable buffers: `render` for frame N
//! submits N and returns N-1, so the CPU never waits for the frame it just queued.
//!
//! It paints what the CPU backend paints, in the same order, with the same
//! geometry helpers (`place_video`, `place_overlay`, `tile_chrome`'s formula), so
//! both meet the same golden images within a code value or two. Differences
//! that remain: the CPU scales with swscale's bilinear filter (wider than two taps
//! when it shrinks); this backend holds R'G'B' at 8 bits between compositing and
//! conversion; and it clamps R'G'B' to 0..1, so Y'CbCr values outside the RGB
//! gamut (saturated camera colours) come out changed where the CPU, which never
//! leaves Y'CbCr for a source already in BT.709 limited, keeps them as they are.

pub mod context;

use super::sprites::SpriteCache;
use super::{OUTPUT_COLOR, RenderError, RenderedFrame, Renderer, place_video};
use crate::color::{Rgba, YuvMatrix};
use crate::frame::{PixelFormat, Plane, VideoFrame};
use crate::scene::{Fit, OverlayContent, Rect, Scene, place_overlay};
use context::GpuContext;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

const COMPOSITE_WGSL: &str = include_str!("../../../shaders/composite.wgsl");
const RGBA_TO_YUV_WGSL: &str = include_str!("../../../shaders/rgba_to_yuv.wgsl");

/// `Draw` in composite.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct DrawUniform {
    rect: [f32; 4],
    target: [f32; 4],
    color: [f32; 4],
    page: [f32; 4],
    tile: [f32; 4],
    shape: [f32; 4],
    win: [f32; 4],
    tex: [f32; 4],
    m0: [f32; 4],
    m1: [f32; 4],
    m2: [f32; 4],
    flags: [f32; 4],
}

const DRAW_SIZE: u64 = std::mem::size_of::<DrawUniform>() as u64;

/// `Convert` in rgba_to_yuv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvertUniform {
    rows: [[f32; 4]; 3],
}

fn rect4(r: Rect) -> [f32; 4] {
    [r.x as f32, r.y as f32, r.w as f32, r.h as f32]
}

fn rgb4(c: Rgba) -> [f32; 4] {
    let [r, g, b, _] = c.to_f32();
    [r, g, b, 1.0]
}

fn gpu_err(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> RenderError {
    RenderError::Gpu { what, source: Box::new(e) }
}

/// Runs `f` inside validation, out-of-memory and internal error scopes and turns
/// whatever they caught into `RenderError::Gpu`.
fn scoped<T>(
    device: &wgpu::Device,
    what: &'static str,
    f: impl FnOnce() -> Result<T, RenderError>,
) -> Result<T, RenderError> {
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let v = pollster::block_on(validation.pop());
    let o = pollster::block_on(oom.pop());
    let i = pollster::block_on(internal.pop());
    match v.or(o).or(i) {
        Some(e) => Err(gpu_err(what, e)),
        None => out,
    }
}

/// Bytes per row of a `w`-byte row in a buffer that a texture is copied into.
fn padded(w: u32) -> u32 {
    w.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT
}

struct Pipelines {
    fill: wgpu::RenderPipeline,
    video: wgpu::RenderPipeline,
    sprite: wgpu::RenderPipeline,
    chrome: wgpu::RenderPipeline,
    luma: wgpu::RenderPipeline,
    chroma: wgpu::RenderPipeline,
    draw_layout: wgpu::BindGroupLayout,
    video_layout: wgpu::BindGroupLayout,
    sprite_layout: wgpu::BindGroupLayout,
    convert_layout: wgpu::BindGroupLayout,
}

impl Pipelines {
    fn new(device: &wgpu::Device) -> Self {
        let composite = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("composite.wgsl"),
            source: wgpu::ShaderSource::Wgsl(COMPOSITE_WGSL.into()),
        });
        let convert = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("rgba_to_yuv.wgsl"),
            source: wgpu::ShaderSource::Wgsl(RGBA_TO_YUV_WGSL.into()),
        });
        let texture = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let uniform = |binding, dynamic, size| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: dynamic,
                min_binding_size: NonZeroU64::new(size),
            },
            count: None,
        };
        let draw_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("draw uniforms"),
            entries: &[uniform(0, true, DRAW_SIZE)],
        });
        let video_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("video planes"),
            entries: &[
                texture(0),
                texture(1),
                texture(2),
                wgpu::BindGroupLayoutEntry {
                    binding: 3,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let sprite_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sprite"),
            entries: &[texture(4)],
        });
        let convert_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("rgba to yuv"),
            entries: &[uniform(0, false, std::mem::size_of::<ConvertUniform>() as u64), texture(1)],
        });
        let layout = |groups: &[Option<&wgpu::BindGroupLayout>]| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: groups,
                immediate_size: 0,
            })
        };
        let draw_only = layout(&[Some(&draw_layout)]);
        let with_video = layout(&[Some(&draw_layout), Some(&video_layout)]);
        let with_sprite = layout(&[Some(&draw_layout), Some(&sprite_layout)]);
        let convert_pl = layout(&[Some(&convert_layout)]);

        let rgba = |blend: Option<wgpu::BlendState>| {
            [Some(wgpu::ColorTargetState {
                format: wgpu::TextureFormat::Rgba8Unorm,
                blend,
                write_mask: wgpu::ColorWrites::ALL,
            })]
        };
        let r8 = Some(wgpu::ColorTargetState {
            format: wgpu::TextureFormat::R8Unorm,
            blend: None,
            write_mask: wgpu::ColorWrites::ALL,
        });
        let premul = Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING);
        let pipeline = |label: &str,
                        pl: &wgpu::PipelineLayout,
                        module: &wgpu::ShaderModule,
                        vs: &str,
                        fs: &str,
                        targets: &[Option<wgpu::ColorTargetState>]| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(pl),
                vertex: wgpu::VertexState {
                    module,
                    entry_point: Some(vs),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                primitive: wgpu::PrimitiveState {
                    topology: wgpu::PrimitiveTopology::TriangleList,
                    cull_mode: None,
                    ..Default::default()
                },
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module,
                    entry_point: Some(fs),
                    compilation_options: Default::default(),
                    targets,
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        Self {
            fill: pipeline("fill", &draw_only, &composite, "vs_quad", "fs_fill", &rgba(None)),
            video: pipeline("video", &with_video, &composite, "vs_quad", "fs_video", &rgba(None)),
            sprite: pipeline("sprite", &with_sprite, &composite, "vs_quad", "fs_sprite", &rgba(premul)),
            chrome: pipeline("chrome", &draw_only, &composite, "vs_chrome", "fs_chrome", &rgba(premul)),
            luma: pipeline("luma", &convert_pl, &convert, "vs_full", "fs_luma", std::slice::from_ref(&r8)),
            chroma: pipeline("chroma", &convert_pl, &convert, "vs_full", "fs_chroma", &[r8.clone(), r8]),
            draw_layout,
            video_layout,
            sprite_layout,
            convert_layout,
        }
    }
}

/// A source's planes on the GPU, kept while its size and format stay the same.
struct SourceTextures {
    key: (u32, u32, PixelFormat),
    planes: Vec<wgpu::Texture>,
    bind: wgpu::BindGroup,
}

/// An overlay sprite on the GPU.
struct SpriteTexture {
    width: u32,
    height: u32,
    bind: wgpu::BindGroup,
}

/// A mappable buffer holding one frame's Y, U and V planes, rows padded to 256 bytes.
struct Readback {
    buffer: wgpu::Buffer,
}

/// A frame submitted and being mapped.
struct Pending {
    slot: usize,
    pts_us: i64,
    submission: wgpu::SubmissionIndex,
    mapped: Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>,
}

/// One draw of the composite pass.
enum Cmd {
    Fill,
    Video(wgpu::BindGroup),
    Sprite(wgpu::BindGroup, [u32; 4]),
    Chrome,
}

pub(crate) struct GpuRenderer {
    ctx: Arc<GpuContext>,
    width: u32,
    height: u32,
    pipes: Pipelines,
    sampler: wgpu::Sampler,
    /// Per-draw uniforms at `stride`-byte steps (dynamic offsets).
    uniforms: wgpu::Buffer,
    uniform_slots: u64,
    uniform_bind: wgpu::BindGroup,
    stride: u64,
    uniform_bytes: Vec<u8>,
    canvas_view: wgpu::TextureView,
    convert_bind: wgpu::BindGroup,
    planes: [wgpu::Texture; 3],
    plane_views: [wgpu::TextureView; 3],
    slots: [Readback; 2],
    /// Offsets of Y, U and V in a readback buffer, and their padded row lengths.
    offsets: [u64; 3],
    rows: [u32; 3],
    next_slot: usize,
    pending: Option<Pending>,
    sources: HashMap<usize, SourceTextures>,
    sprites: SpriteCache,
    sprite_textures: HashMap<OverlayContent, Arc<SpriteTexture>>,
}

impl GpuRenderer {
    /// A renderer on the process-wide device.
    pub(crate) fn new(width: u32, height: u32) -> Result<Self, RenderError> {
        Self::with_context(context::shared()?, width, height)
    }

    pub(crate) fn with_context(ctx: Arc<GpuContext>, width: u32, height: u32) -> Result<Self, RenderError> {
        crate::encode::check_size(width, height)?;
        let max = ctx.device.limits().max_texture_dimension_2d;
        if width > max || height > max {
            let adapter = ctx.adapter_name.clone();
            return Err(RenderError::TextureLimit { what: "the output".into(), w: width, h: height, adapter, max });
        }
        let device = ctx.device.clone();
        scoped(&device, "creating the GPU renderer", || Ok(Self::build(ctx, width, height)))
    }

    fn build(ctx: Arc<GpuContext>, width: u32, height: u32) -> Self {
        let device = &ctx.device;
        let pipes = Pipelines::new(device);
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("video"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let align = device.limits().min_uniform_buffer_offset_alignment.max(1) as u64;
        let stride = DRAW_SIZE.div_ceil(align) * align;
        let uniform_slots = 64;
        let (uniforms, uniform_bind) = Self::uniform_buffer(device, &pipes, stride, uniform_slots);

        let target = |label, w, h, format, usage| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let canvas = target(
            "canvas",
            width,
            height,
            wgpu::TextureFormat::Rgba8Unorm,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let canvas_view = canvas.create_view(&Default::default());
        let plane_usage = wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC;
        let planes = [
            target("Y", width, height, wgpu::TextureFormat::R8Unorm, plane_usage),
            target("U", width / 2, height / 2, wgpu::TextureFormat::R8Unorm, plane_usage),
            target("V", width / 2, height / 2, wgpu::TextureFormat::R8Unorm, plane_usage),
        ];
        let plane_views = [0, 1, 2].map(|i| planes[i].create_view(&Default::default()));

        let m = YuvMatrix::new(OUTPUT_COLOR).from_rgb;
        let convert_uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("rgb to yuv matrix"),
            size: std::mem::size_of::<ConvertUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&convert_uniform, 0, bytemuck::bytes_of(&ConvertUniform { rows: m }));
        let convert_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rgba to yuv"),
            layout: &pipes.convert_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: convert_uniform.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&canvas_view) },
            ],
        });

        let rows = [padded(width), padded(width / 2), padded(width / 2)];
        let y_size = rows[0] as u64 * height as u64;
        let c_size = rows[1] as u64 * (height / 2) as u64;
        let offsets = [0, y_size, y_size + c_size];
        let slot = |label| Readback {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: y_size + 2 * c_size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        let slots = [slot("readback 0"), slot("readback 1")];
        Self {
            ctx,
            width,
            height,
            pipes,
            sampler,
            uniforms,
            uniform_slots,
            uniform_bind,
            stride,
            uniform_bytes: Vec::new(),
            canvas_view,
            convert_bind,
            planes,
            plane_views,
            slots,
            offsets,
            rows,
            next_slot: 0,
            pending: None,
            sources: HashMap::new(),
            sprites: SpriteCache::new(),
            sprite_textures: HashMap::new(),
        }
    }

    fn uniform_buffer(
        device: &wgpu::Device,
        pipes: &Pipelines,
        stride: u64,
        slots: u64,
    ) -> (wgpu::Buffer, wgpu::BindGroup) {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("draw uniforms"),
            size: stride * slots,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("draw uniforms"),
            layout: &pipes.draw_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffer,
                    offset: 0,
                    size: NonZeroU64::new(DRAW_SIZE),
                }),
            }],
        });
        (buffer, bind)
    }

    fn texture(&self, label: &str, w: u32, h: u32, format: wgpu::TextureFormat) -> wgpu::Texture {
        self.ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    }

    /// Uploads source `id` (once per frame) and hands back its bind group.
    fn upload_source(&mut self, id: usize, src: &VideoFrame) -> Result<wgpu::BindGroup, RenderError> {
        let max = self.ctx.device.limits().max_texture_dimension_2d;
        if src.width > max || src.height > max {
            let (what, adapter) = (format!("source {id}"), self.ctx.adapter_name.clone());
            return Err(RenderError::TextureLimit { what, w: src.width, h: src.height, adapter, max });
        }
        src.validate()?;
        // Planes as texture formats and texel sizes.
        let (w, h) = (src.width, src.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let layout: Vec<(wgpu::TextureFormat, u32, u32, u32)> = match src.format {
            PixelFormat::I420 => vec![
                (wgpu::TextureFormat::R8Unorm, w, h, 1),
                (wgpu::TextureFormat::R8Unorm, cw, ch, 1),
                (wgpu::TextureFormat::R8Unorm, cw, ch, 1),
            ],
            PixelFormat::Nv12 => {
                vec![(wgpu::TextureFormat::R8Unorm, w, h, 1), (wgpu::TextureFormat::Rg8Unorm, cw, ch, 2)]
            }
        };
        let key = (w, h, src.format);
        if self.sources.get(&id).is_none_or(|s| s.key != key) {
            let planes: Vec<wgpu::Texture> = layout
                .iter()
                .enumerate()
                .map(|(i, &(f, pw, ph, _))| self.texture(&format!("source {id} plane {i}"), pw, ph, f))
                .collect();
            let views: Vec<wgpu::TextureView> = planes.iter().map(|t| t.create_view(&Default::default())).collect();
            // NV12 binds its UV texture as both U and V; the shader reads .r and .g.
            let (vu, vv) = if views.len() == 3 { (&views[1], &views[2]) } else { (&views[1], &views[1]) };
            let bind = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("video planes"),
                layout: &self.pipes.video_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&views[0]) },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(vu) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(vv) },
                    wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::Sampler(&self.sampler) },
                ],
            });
            self.sources.insert(id, SourceTextures { key, planes, bind });
        }
        let entry = &self.sources[&id];
        for ((tex, p), &(_, pw, ph, _)) in entry.planes.iter().zip(&src.planes).zip(&layout) {
            self.ctx.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: tex,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                &p.data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(p.stride as u32),
                    rows_per_image: Some(ph),
                },
                wgpu::Extent3d { width: pw, height: ph, depth_or_array_layers: 1 },
            );
        }
        Ok(entry.bind.clone())
    }

    /// The overlay's sprite as a texture, rasterised and uploaded on first use.
    fn sprite(&mut self, content: &OverlayContent) -> Arc<SpriteTexture> {
        if let Some(t) = self.sprite_textures.get(content) {
            return t.clone();
        }
        let s = self.sprites.get(content);
        let tex = self.texture("sprite", s.width.max(1), s.height.max(1), wgpu::TextureFormat::Rgba8Unorm);
        if s.width > 0 && s.height > 0 {
            self.ctx.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &tex,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                &s.rgba,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(s.width * 4),
                    rows_per_image: Some(s.height),
                },
                wgpu::Extent3d { width: s.width, height: s.height, depth_or_array_layers: 1 },
            );
        }
        let view = tex.create_view(&Default::default());
        let bind = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sprite"),
            layout: &self.pipes.sprite_layout,
            entries: &[wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&view) }],
        });
        let t = Arc::new(SpriteTexture { width: s.width, height: s.height, bind });
        // Same bound as the sprite cache: names churn, memory must not.
        if self.sprite_textures.len() > 4096 {
            self.sprite_textures.clear();
        }
        self.sprite_textures.insert(content.clone(), t.clone());
        t
    }

    /// The scene's draws and their uniforms.
    fn plan(&mut self, scene: &Scene, sources: &[&VideoFrame]) -> Result<(Vec<Cmd>, Vec<DrawUniform>), RenderError> {
        let target = [self.width as f32, self.height as f32, 0.0, 0.0];
        let page = rgb4(scene.background);
        let mut cmds = Vec::new();
        let mut unis = Vec::new();
        let mut uploaded: HashMap<usize, wgpu::BindGroup> = HashMap::new();
        for tile in &scene.tiles {
            let video = match tile.video {
                Some((id, fit)) => Some((id, *sources.get(id).ok_or(RenderError::MissingSource(id))?, fit)),
                None => None,
            };
            if !matches!(video, Some((_, _, Fit::Cover))) {
                cmds.push(Cmd::Fill);
                unis.push(DrawUniform {
                    rect: rect4(tile.rect),
                    target,
                    color: rgb4(tile.background),
                    ..Default::default()
                });
            }
            if let Some((id, src, fit)) = video {
                let (win, dst) = place_video(tile.rect, src.width, src.height, fit);
                if dst.w > 0 && dst.h > 0 && win.w > 0 && win.h > 0 {
                    let bind = match uploaded.get(&id) {
                        Some(b) => b.clone(),
                        None => {
                            let b = self.upload_source(id, src)?;
                            uploaded.insert(id, b.clone());
                            b
                        }
                    };
                    let m = YuvMatrix::new(src.color).to_rgb;
                    let (sw, sh) = (src.width as f32, src.height as f32);
                    cmds.push(Cmd::Video(bind));
                    unis.push(DrawUniform {
                        rect: rect4(dst),
                        target,
                        tile: rect4(dst),
                        win: [win.x as f32, win.y as f32, win.w as f32, win.h as f32],
                        tex: [sw, sh, src.width.div_ceil(2) as f32, src.height.div_ceil(2) as f32],
                        m0: m[0],
                        m1: m[1],
                        m2: m[2],
                        flags: [
                            if src.format == PixelFormat::Nv12 { 1.0 } else { 0.0 },
                            if (win.w, win.h) == (dst.w, dst.h) { 1.0 } else { 0.0 },
                            0.0,
                            0.0,
                        ],
                        ..Default::default()
                    });
                }
            }
            for ov in &tile.overlays {
                let sprite = self.sprite(&ov.content);
                let (x, y) = place_overlay(ov.anchor, tile.rect, sprite.width, sprite.height);
                // Scissor: the sprite's box within the tile and the frame.
                let x0 = x.max(tile.rect.x as i64).max(0);
                let y0 = y.max(tile.rect.y as i64).max(0);
                let x1 = (x + sprite.width as i64).min(tile.rect.right() as i64).min(self.width as i64);
                let y1 = (y + sprite.height as i64).min(tile.rect.bottom() as i64).min(self.height as i64);
                if x0 >= x1 || y0 >= y1 {
                    continue;
                }
                cmds.push(Cmd::Sprite(sprite.bind.clone(), [x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32]));
                unis.push(DrawUniform {
                    rect: [x as f32, y as f32, sprite.width as f32, sprite.height as f32],
                    target,
                    ..Default::default()
                });
            }
            let border_w = tile.border.map_or(0.0, |b| b.width);
            if (tile.radius > 0.0 || border_w > 0.0) && tile.rect.w > 0 && tile.rect.h > 0 {
                // The CPU mask's band: pixels farther in are untouched.
                let band = (tile.radius.max(border_w) + 2.0)
                    .ceil()
                    .min((tile.rect.w / 2) as f32)
                    .min((tile.rect.h / 2) as f32);
                cmds.push(Cmd::Chrome);
                unis.push(DrawUniform {
                    rect: rect4(tile.rect),
                    target,
                    color: tile.border.map_or(page, |b| rgb4(b.color)),
                    page,
                    tile: rect4(tile.rect),
                    shape: [tile.radius, border_w, band, 0.0],
                    ..Default::default()
                });
            }
        }
        Ok((cmds, unis))
    }

    /// Encodes and submits one frame into readback slot `slot`.
    fn submit(
        &mut self,
        scene: &Scene,
        sources: &[&VideoFrame],
        slot: usize,
    ) -> Result<wgpu::SubmissionIndex, RenderError> {
        let (cmds, unis) = self.plan(scene, sources)?;
        let device = self.ctx.device.clone();
        if unis.len() as u64 > self.uniform_slots {
            let slots = (unis.len() as u64).next_power_of_two();
            let (buffer, bind) = Self::uniform_buffer(&device, &self.pipes, self.stride, slots);
            (self.uniforms, self.uniform_bind, self.uniform_slots) = (buffer, bind, slots);
        }
        let stride = self.stride as usize;
        self.uniform_bytes.clear();
        self.uniform_bytes.resize(unis.len().max(1) * stride, 0);
        for (i, u) in unis.iter().enumerate() {
            self.uniform_bytes[i * stride..i * stride + DRAW_SIZE as usize].copy_from_slice(bytemuck::bytes_of(u));
        }
        self.ctx.queue.write_buffer(&self.uniforms, 0, &self.uniform_bytes);

        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        {
            let bg = scene.background.to_f32();
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("composite"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &self.canvas_view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: bg[0] as f64,
                            g: bg[1] as f64,
                            b: bg[2] as f64,
                            a: 1.0,
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            let full = [0, 0, self.width, self.height];
            for (i, cmd) in cmds.iter().enumerate() {
                let offset = (i * stride) as u32;
                let scissor = match cmd {
                    Cmd::Sprite(_, s) => *s,
                    _ => full,
                };
                pass.set_scissor_rect(scissor[0], scissor[1], scissor[2], scissor[3]);
                match cmd {
                    Cmd::Fill => pass.set_pipeline(&self.pipes.fill),
                    Cmd::Video(b) => {
                        pass.set_pipeline(&self.pipes.video);
                        pass.set_bind_group(1, b, &[]);
                    }
                    Cmd::Sprite(b, _) => {
                        pass.set_pipeline(&self.pipes.sprite);
                        pass.set_bind_group(1, b, &[]);
                    }
                    Cmd::Chrome => pass.set_pipeline(&self.pipes.chrome),
                }
                pass.set_bind_group(0, &self.uniform_bind, &[offset]);
                // Chrome draws its four edge strips as instances.
                let instances = if matches!(cmd, Cmd::Chrome) { 4 } else { 1 };
                pass.draw(0..6, 0..instances);
            }
        }
        let attach = |view| {
            Some(wgpu::RenderPassColorAttachment {
                view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::BLACK), store: wgpu::StoreOp::Store },
            })
        };
        for (label, pipeline, targets) in [
            ("luma", &self.pipes.luma, vec![attach(&self.plane_views[0])]),
            ("chroma", &self.pipes.chroma, vec![attach(&self.plane_views[1]), attach(&self.plane_views[2])]),
        ] {
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some(label),
                color_attachments: &targets,
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &self.convert_bind, &[]);
            pass.draw(0..3, 0..1);
        }
        let sizes = [(self.width, self.height), (self.width / 2, self.height / 2), (self.width / 2, self.height / 2)];
        for (k, &(w, h)) in sizes.iter().enumerate() {
            enc.copy_texture_to_buffer(
                wgpu::TexelCopyTextureInfo {
                    texture: &self.planes[k],
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.slots[slot].buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: self.offsets[k],
                        bytes_per_row: Some(self.rows[k]),
                        rows_per_image: Some(h),
                    },
                },
                wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            );
        }
        Ok(self.ctx.queue.submit([enc.finish()]))
    }

    /// Waits for a submitted frame's mapping and copies its planes out.
    fn finish(&mut self, p: Pending) -> Result<RenderedFrame, RenderError> {
        let take = |m: &Mutex<Option<Result<(), wgpu::BufferAsyncError>>>| crate::sync::lock(m).take();
        self.ctx
            .device
            .poll(wgpu::PollType::Wait { submission_index: Some(p.submission), timeout: None })
            .map_err(|e| gpu_err("waiting for a frame", e))?;
        let mut state = take(&p.mapped);
        if state.is_none() {
            // The callback runs in a poll once the map is resolved; give it one more.
            self.ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_err("waiting for a frame", e))?;
            state = take(&p.mapped);
        }
        match state {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(gpu_err("mapping the readback buffer", e)),
            None => return Err(RenderError::NeverMapped),
        }
        let buffer = &self.slots[p.slot].buffer;
        let planes = {
            let view = buffer.get_mapped_range(..).map_err(|e| gpu_err("reading the readback buffer", e))?;
            let dims =
                [(self.width, self.height), (self.width / 2, self.height / 2), (self.width / 2, self.height / 2)];
            dims.iter()
                .enumerate()
                .map(|(k, &(w, h))| {
                    let (w, row) = (w as usize, self.rows[k] as usize);
                    let base = self.offsets[k] as usize;
                    let mut data = Vec::with_capacity(w * h as usize);
                    for r in 0..h as usize {
                        data.extend_from_slice(&view[base + r * row..base + r * row + w]);
                    }
                    Plane { data, stride: w }
                })
                .collect::<Vec<_>>()
        };
        buffer.unmap();
        let frame = VideoFrame::from_planes(PixelFormat::I420, self.width, self.height, OUTPUT_COLOR, planes)?;
        Ok(RenderedFrame { pts_us: p.pts_us, frame })
    }
}

impl Renderer for GpuRenderer {
    fn describe(&self) -> String {
        let kind = if self.ctx.is_cpu { ", software" } else { "" };
        format!("gpu (wgpu on {}, {}{kind})", self.ctx.adapter_name, self.ctx.backend)
    }

    fn render(
        &mut self,
        scene: &Scene,
        sources: &[&VideoFrame],
        pts_us: i64,
    ) -> Result<Option<RenderedFrame>, RenderError> {
        super::check_scene_size(scene, self.width, self.height)?;
        let slot = self.next_slot;
        let device = self.ctx.device.clone();
        let submission = scoped(&device, "rendering a frame", || self.submit(scene, sources, slot))?;
        let mapped = Arc::new(Mutex::new(None));
        let cb = mapped.clone();
        self.slots[slot].buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            *crate::sync::lock(&cb) = Some(r);
        });
        self.next_slot = 1 - slot;
        match self.pending.replace(Pending { slot, pts_us, submission, mapped }) {
            Some(prev) => self.finish(prev).map(Some),
            None => Ok(None),
        }
    }

    fn flush(&mut self) -> Result<Option<RenderedFrame>, RenderError> {
        match self.pending.take() {
            Some(p) => self.finish(p).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::rgb_to_yuv;
    use crate::frame::{ColorSpace, Matrix, Range};
    use crate::render::cpu::CpuRenderer;
    use crate::render::render_once;
    use crate::scene::{Anchor, Border, Overlay, Tile};

    /// A renderer on whatever adapter exists, or None (with a note) on a machine without one.
    fn gpu(w: u32, h: u32) -> Option<GpuRenderer> {
        match GpuRenderer::new(w, h) {
            Ok(r) => Some(r),
            Err(RenderError::NoAdapter(e)) => {
                eprintln!("note: no GPU adapter ({e}); skipping the GPU comparison");
                None
            }
            Err(e) => panic!("GPU renderer failed: {e}"),
        }
    }

    fn tile(rect: Rect, video: Option<(usize, Fit)>) -> Tile {
        Tile { rect, background: Rgba::rgb(40, 44, 52), radius: 8.0, video, border: None, overlays: vec![] }
    }

    /// Mean absolute difference over all samples, and the share of luma samples off by more than 24.
    fn compare(a: &VideoFrame, b: &VideoFrame) -> (f64, f64) {
        let (mut sum, mut n, mut bad) = (0u64, 0u64, 0u64);
        for k in 0..3 {
            let (w, h) = a.plane_dims(k);
            for y in 0..h {
                for x in 0..w {
                    let pa = a.planes[k].data[y * a.planes[k].stride + x] as i32;
                    let pb = b.planes[k].data[y * b.planes[k].stride + x] as i32;
                    let d = (pa - pb).unsigned_abs() as u64;
                    sum += d;
                    n += 1;
                    if k == 0 && d > 24 {
                        bad += 1;
                    }
                }
            }
        }
        (sum as f64 / n as f64, bad as f64 / (a.width * a.height) as f64)
    }

    #[test]
    fn matches_the_cpu_backend() {
        let Some(mut g) = gpu(320, 180) else { return };
        eprintln!("GPU renderer: {}", g.describe());
        let bt709 = ColorSpace { matrix: Matrix::Bt709, range: Range::Limited };
        let cam =
            VideoFrame::filled(PixelFormat::I420, 640, 360, bt709, rgb_to_yuv(Rgba::rgb(200, 120, 60), bt709)).unwrap();
        let screen =
            VideoFrame::filled(PixelFormat::Nv12, 320, 240, bt709, rgb_to_yuv(Rgba::rgb(30, 90, 220), bt709)).unwrap();
        let mut a = tile(Rect::new(8, 8, 148, 164), Some((0, Fit::Cover)));
        a.border = Some(Border { width: 3.0, color: Rgba::rgb(60, 200, 90) });
        a.overlays.push(Overlay {
            anchor: Anchor::BottomLeft { margin: 8 },
            content: OverlayContent::Label {
                text: "Alice".into(),
                muted: true,
                font_px: 14,
                color: Rgba::WHITE,
                background: "#00000080".parse().unwrap(),
            },
        });
        let b = tile(Rect::new(164, 8, 148, 164), Some((1, Fit::Contain)));
        let scene = Scene { width: 320, height: 180, background: Rgba::rgb(18, 18, 22), tiles: vec![a, b] };
        let sources = [&cam, &screen];
        let mut c = CpuRenderer::new(320, 180).unwrap();
        let want = render_once(&mut c, &scene, &sources).unwrap();
        let got = render_once(&mut g, &scene, &sources).unwrap();
        let (mad, bad) = compare(&want, &got);
        eprintln!("mean abs diff {mad:.3}, luma > 24 off: {:.3}%", bad * 100.0);
        assert!(mad < 1.5, "mean absolute difference {mad}");
        assert!(bad <= 0.005, "{:.3}% of luma samples differ by more than 24", bad * 100.0);

        // A full-range BT.601 camera comes out in BT.709 limited like on the CPU.
        let full601 = ColorSpace { matrix: Matrix::Bt601, range: Range::Full };
        let colour = Rgba::rgb(180, 60, 30);
        let cam601 = VideoFrame::filled(PixelFormat::I420, 640, 360, full601, rgb_to_yuv(colour, full601)).unwrap();
        let mut t = tile(Rect::new(0, 0, 320, 180), Some((0, Fit::Cover)));
        t.radius = 0.0;
        let scene = Scene { width: 320, height: 180, background: Rgba::BLACK, tiles: vec![t] };
        let want = render_once(&mut c, &scene, &[&cam601]).unwrap().yuv_at(160, 90);
        let got = render_once(&mut g, &scene, &[&cam601]).unwrap().yuv_at(160, 90);
        let expected = rgb_to_yuv(colour, OUTPUT_COLOR);
        for k in 0..3 {
            assert!((want[k] as i32 - got[k] as i32).abs() <= 3, "601 full: cpu {want:?} gpu {got:?}");
            assert!((expected[k] as i32 - got[k] as i32).abs() <= 3, "601 full: want {expected:?} gpu {got:?}");
        }
    }

    #[test]
    fn pipelines_frames_and_keeps_their_timestamps() {
        let Some(mut g) = gpu(64, 32) else { return };
        let scene = |c| Scene { width: 64, height: 32, background: c, tiles: vec![] };
        let colours = [Rgba::rgb(255, 0, 0), Rgba::rgb(0, 255, 0), Rgba::rgb(0, 0, 255)];
        assert!(g.render(&scene(colours[0]), &[], 0).unwrap().is_none());
        let mut out = vec![g.render(&scene(colours[1]), &[], 40).unwrap().unwrap()];
        out.push(g.render(&scene(colours[2]), &[], 80).unwrap().unwrap());
        out.push(g.flush().unwrap().unwrap());
        assert!(g.flush().unwrap().is_none());
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f.pts_us, i as i64 * 40);
            assert_eq!(f.frame.yuv_at(10, 10), rgb_to_yuv(colours[i], OUTPUT_COLOR), "frame {i}");
        }
        assert!(matches!(g.render(&scene(colours[0]), &[], 0), Ok(None)));
        let wrong = Scene { width: 32, height: 32, background: Rgba::BLACK, tiles: vec![] };
        assert!(matches!(g.render(&wrong, &[], 0), Err(RenderError::SizeMismatch { .. })));
        let missing = Scene { tiles: vec![tile(Rect::new(0, 0, 32, 32), Some((3, Fit::Cover)))], ..scene(Rgba::BLACK) };
        assert!(matches!(g.render(&missing, &[], 0), Err(RenderError::MissingSource(3))));
    }

    /// Per-frame process CPU time (all threads, lavapipe's included) of render +
    /// readback for 720p with four 640x360 cover tiles. Run with
    /// `cargo test --release --lib gpu::tests::cpu_time -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cpu_time_720p_four_tiles() {
        let Some(mut g) = gpu(1280, 720) else { return };
        let bt709 = ColorSpace::default();
        let frames: Vec<VideoFrame> = (0..4)
            .map(|i| VideoFrame::filled(PixelFormat::I420, 640, 360, bt709, [60 + 30 * i as u8, 110, 150]).unwrap())
            .collect();
        let tiles = (0..4)
            .map(|i| Tile {
                rect: Rect::new((i % 2) * 640, (i / 2) * 360, 640, 360),
                background: Rgba::BLACK,
                radius: 8.0,
                video: Some((i as usize, Fit::Cover)),
                border: None,
                overlays: vec![],
            })
            .collect();
        let scene = Scene { width: 1280, height: 720, background: Rgba::BLACK, tiles };
        let sources: Vec<&VideoFrame> = frames.iter().collect();
        for _ in 0..5 {
            g.render(&scene, &sources, 0).unwrap();
        }
        g.flush().unwrap();
        let cpu = || {
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(u.ru_utime) + t(u.ru_stime)
        };
        let (c0, w0) = (cpu(), std::time::Instant::now());
        let mut n = 0;
        for i in 0..60 {
            n += g.render(&scene, &sources, i).unwrap().is_some() as u32;
        }
        n += g.flush().unwrap().is_some() as u32;
        let (c1, wall) = (cpu(), w0.elapsed().as_secs_f64());
        assert_eq!(n, 60);
        eprintln!(
            "{}: {:.2} ms CPU/frame, {:.2} ms wall/frame",
            g.describe(),
            (c1 - c0) * 1000.0 / 60.0,
            wall * 1000.0 / 60.0
        );
    }
}
