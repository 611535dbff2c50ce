// Browser pieces shared by the tabs.

// Base64 from the server -> bytes / little-endian float32.
window.ddpmB64 = {
  u8(s) {
    const bin = atob(s || ''), u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  },
  f32(s) { return new Float32Array(window.ddpmB64.u8(s).buffer); },
};

// The forward process in the page, for a scene the server sent once: x_0 and ε as base64 float32, the
// schedule's √ᾱ_t and √(1−ᾱ_t) as float64 lists. x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε in float32, step by step as
// torch's explorer.diffusion.q_sample does it, so the page's values equal the server's (tests check this).
window.ddpmQSample = {
  load(p) {
    p.x0 = window.ddpmB64.f32(p.x0);
    p.eps = window.ddpmB64.f32(p.eps);
    p.a32 = Float32Array.from(p.coef.sqrt_alpha_bar);  // float64 -> float32 as torch.tensor(.., float32)
    p.b32 = Float32Array.from(p.coef.sqrt_one_minus_alpha_bar);
    p.xt = new Float32Array(p.x0.length);
    return p;
  },
  // A slider's value as a timestep of the scene: a whole number in 0..T.
  timestep(p, tRaw) { return Math.max(0, Math.min(p.T, Math.round(Number(tRaw) || 0))); },
  at(p, t) {
    const f32 = Math.fround, a = p.a32[t], b = p.b32[t], x0 = p.x0, eps = p.eps, xt = p.xt;
    for (let i = 0; i < xt.length; i++) xt[i] = f32(f32(a * x0[i]) + f32(b * eps[i]));
    return xt;
  },
  // explorer.data.to_uint8: ((clamp(x, -1, 1) + 1) * 127.5).round(), torch.round being half to even
  toByte(v) {
    const f32 = Math.fround, c = v < -1 ? -1 : (v > 1 ? 1 : v), y = f32(f32(c + 1) * 127.5), r = Math.round(y);
    return (r - y === 0.5 && r % 2 !== 0) ? r - 1 : r;
  },
  // Draw x_t (H, W, C float32, as p.w, p.h, p.c say) into a canvas of its native size.
  paint(canvas, p, xt) {
    if (canvas.width !== p.w || canvas.height !== p.h) { canvas.width = p.w; canvas.height = p.h; canvas.ddpmImage = null; }
    const ctx = canvas.getContext('2d');
    if (!canvas.ddpmImage) { canvas.ddpmImage = ctx.createImageData(p.w, p.h); canvas.ddpmImage.data.fill(255); }
    const px = canvas.ddpmImage.data, c = p.c, n = p.w * p.h, toByte = this.toByte;
    for (let j = 0; j < n; j++) {
      if (c === 1) { const g = toByte(xt[j]); px[4*j] = g; px[4*j+1] = g; px[4*j+2] = g; }
      else { px[4*j] = toByte(xt[3*j]); px[4*j+1] = toByte(xt[3*j+1]); px[4*j+2] = toByte(xt[3*j+2]); }
    }
    ctx.putImageData(canvas.ddpmImage, 0, 0);
  },
};

// Call fn(value) from a range input's own input event: a drag is drawn without a trip through Gradio's event
// queue. One listener per selector, on the document, in the capture phase, installed once: it serves the element
// whenever Gradio adds it (a tab's contents come the first time the tab is opened), with no per-element
// bookkeeping, and it reads the value the person set before Gradio's own handler runs. Returns false while no
// such element is in the page yet.
const ddpmRangeSelectors = new Set();
window.ddpmListenRange = (selector, fn) => {
  if (!ddpmRangeSelectors.has(selector)) {
    ddpmRangeSelectors.add(selector);
    document.addEventListener('input', (e) => {
      if (e.target instanceof Element && e.target.matches(selector)) fn(e.target.value);
    }, true);
  }
  return document.querySelector(selector) !== null;
};

// Call fn() once the element with this id is in the page: now, or when it is added. Gradio adds a tab's
// contents the first time the tab is opened, which may be long after the data to draw there arrived.
window.ddpmWhenPresent = (id, fn) => {
  if (document.getElementById(id)) { fn(); return; }
  const watch = new MutationObserver(() => {
    if (!document.getElementById(id)) return;
    watch.disconnect();
    fn();
  });
  watch.observe(document.body, { childList: true, subtree: true });
};

// Plot markers that follow the current t (explorer/plots.py names the shapes).
// Layout shapes named "vline" (a vertical line at t) and "marker:<key>" (a circle at (t, value)) move with one
// Plotly.relayout of the whole shapes array: no figure is re-sent from the server. (Relayout by attribute path,
// "shapes[i].x0" and so on, took 46-62 ms for the Reverse tab's two plots in Chromium on a 2-core Xeon, which
// held Play at 21 frames/s; the whole array takes about 5 ms.)
window.ddpmPlots = {
  // Move the t line and markers of the plotly figures inside `selector` to t; valueOf(key) gives a marker's
  // y value (null or undefined hides it, e.g. log-SNR = -inf).
  moveMarkers(selector, t, valueOf) {
    const P = window.Plotly;
    if (!P) return;
    document.querySelectorAll(selector + ' .js-plotly-plot').forEach((gd) => {
      let moved = false;
      const shapes = ((gd.layout && gd.layout.shapes) || []).map((sh) => {
        const name = sh.name || '';
        if (name === 'vline') {
          moved = true;
          return { ...sh, x0: t, x1: t };
        }
        if (name.startsWith('marker:')) {
          moved = true;
          const y = valueOf(name.slice(7));
          const shown = y !== null && y !== undefined;
          return { ...sh, xanchor: t, yanchor: shown ? y : 0, visible: shown };
        }
        return sh;
      });
      if (moved) P.relayout(gd, { shapes });
    });
  },
};
