// Reverse tab: while sampling, the newest frame arrives and is shown; when the run ends (or is stopped) every
// recorded frame (x_t, ε̂, x̂₀ as uint8 grids, the step's numbers and plot markers) arrives once
// (explorer/ui/reverse.py, frames_payload), and the frame slider, ◀ ▶ and Play draw from them here: no
// request per scrub. The grids are laid out as
// explorer.render.tile(min_side=1) does, so the canvases hold the same pixels as the server's reverse_view.
(() => {
  const SLIDER = '#reverse-frame input[type=range]';
  const KEYS = ['x_t', 'eps', 'x0_hat'];
  const PLAY_FPS = 30;
  const PLAY_SECONDS = 8; // a long run plays through in about this long (frames are skipped to keep 30/s)

  // the server zlib-compresses the grids (explorer/ui/reverse.py, frames_payload)
  const inflate = async (s) => new Uint8Array(
    await new Response(new Blob([window.ddpmB64.u8(s)]).stream().pipeThrough(new DecompressionStream('deflate'))).arrayBuffer());

  window.ddpmReverse = {
    run: null, shown: -1, pending: null, playing: 0, drawn: 0, previewFrame: -1,

    // A chunk of frames from the server: the newest frame while sampling (a preview, shown and not kept), or
    // every frame of the run once it has finished or was stopped.
    async append(json) {
      if (!json) return;
      const c = JSON.parse(json);
      if (c.preview) return this.preview(c);
      if (this.run && this.run.id === c.run && this.run.numbers.length >= c.end) return; // already here
      const r = { id: c.run, batch: c.batch, h: c.h, w: c.w, cols: c.cols, gap: c.gap, finished: c.finished,
                  numSteps: c.num_steps, frames: {}, numbers: c.numbers, markers: c.markers };
      const size = c.batch * c.h * c.w;
      for (const key of KEYS) {
        const bytes = await inflate(c[key]);
        r.frames[key] = [];
        for (let i = 0; i * size < bytes.length; i++) r.frames[key].push(bytes.subarray(i * size, (i + 1) * size));
      }
      this.pause();
      this.run = r;
      this.shown = -1;
      this.previewFrame = -1;
      this.listen();
      const range = document.querySelector(SLIDER);
      if (range) range.max = String(Math.max(c.end - 1, 1));
      this.goTo(c.end - 1);
      const root = document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      if (root) root.dataset.frames = String(c.end); // how many frames the page holds (tests wait on it)
    },

    async preview(c) {
      if (c.start <= this.previewFrame) return;
      this.previewFrame = c.start;
      const r = { id: c.run, batch: c.batch, h: c.h, w: c.w, cols: c.cols, gap: c.gap, frames: {},
                  numbers: [], markers: [] };
      for (const key of KEYS) r.frames[key] = [await inflate(c[key])];
      if (this.previewFrame !== c.start) return; // a newer preview arrived meanwhile
      this.pause();
      this.run = null; // the previous run's frames are gone: this one is being sampled
      this.shown = -1;
      this.paint(r, 0, c.start, c.numbers[0], c.markers[0]);
    },

    count() { return this.run ? this.run.numbers.length : 0; },

    listen() {
      window.ddpmListenRange(SLIDER, (v) => this.show(v));
    },

    // Show frame k and move the slider there (as a person would: Gradio's slider follows the range's input event).
    goTo(k) {
      const n = this.count();
      if (!n) return;
      k = Math.max(0, Math.min(n - 1, Math.round(Number(k) || 0)));
      this.draw(k);
      const range = document.querySelector(SLIDER);
      if (range && Number(range.value) !== k) {
        range.value = String(k);
        range.dispatchEvent(new Event('input', { bubbles: true }));
      }
    },

    step(delta) {
      this.pause();
      this.goTo(this.shown + delta);
    },

    grid(r, bytes, canvas) {
      // explorer.render.tile: samples in rows of `cols`, `gap` white pixels between them
      const rows = Math.ceil(r.batch / r.cols);
      const W = r.cols * (r.w + r.gap) - r.gap, H = rows * (r.h + r.gap) - r.gap;
      if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; canvas.ddpmImage = null; }
      const ctx = canvas.getContext('2d');
      if (!canvas.ddpmImage) canvas.ddpmImage = ctx.createImageData(W, H);
      const px = canvas.ddpmImage.data;
      px.fill(255);
      for (let b = 0; b < r.batch; b++) {
        const y0 = Math.floor(b / r.cols) * (r.h + r.gap), x0 = (b % r.cols) * (r.w + r.gap);
        for (let y = 0; y < r.h; y++) {
          let src = b * r.h * r.w + y * r.w, dst = 4 * ((y0 + y) * W + x0);
          for (let x = 0; x < r.w; x++, src++, dst += 4) { const g = bytes[src]; px[dst] = g; px[dst + 1] = g; px[dst + 2] = g; }
        }
      }
      ctx.putImageData(canvas.ddpmImage, 0, 0);
    },

    // Gradio's slider events: draw what the slider holds now (an event may run late, after later moves).
    fromSlider() {
      const range = document.querySelector(SLIDER);
      if (range) this.show(range.value);
    },

    // The person chose frame k (slider, its number box, keys): draw it.
    show(kRaw) {
      const n = this.count();
      if (!n) return;
      this.draw(Math.max(0, Math.min(n - 1, Math.round(Number(kRaw) || 0))));
    },

    draw(k) {
      const r = this.run;
      if (!r || k === this.shown) return;
      this.paint(r, k, k, r.numbers[k], r.markers[k]);
      this.shown = k;
      this.drawn++;
    },

    // Draw frame `index` of run r (the result frame repeats the last ε̂ and x̂₀), labelled as frame `label`.
    paint(r, index, label, numbers, marker) {
      const root = document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      if (!root) return;
      for (const key of KEYS) {
        const frames = r.frames[key];
        const bytes = frames[Math.min(index, frames.length - 1)];
        const canvas = root.querySelector(`canvas[data-key="${key}"]`);
        if (bytes && canvas) { this.grid(r, bytes, canvas); canvas.dataset.frame = String(label); }
      }
      root.querySelector('.ddpm-rev-numbers').innerHTML = numbers; // built and escaped on the server
      root.dataset.frame = String(label);
      this.moveMarkers(marker);
    },

    play() {
      const n = this.count();
      if (!n || this.playing) return;
      if (this.shown >= n - 1) this.goTo(0);
      const stride = Math.max(1, Math.ceil(n / (PLAY_FPS * PLAY_SECONDS)));
      let last = performance.now();
      const tick = (now) => {
        if (!this.playing) return;
        if (now - last >= 1000 / PLAY_FPS - 1) {
          last = now;
          this.goTo(this.shown + stride);
          if (this.shown >= this.count() - 1) { this.playing = 0; return; }
        }
        this.playing = requestAnimationFrame(tick);
      };
      this.playing = requestAnimationFrame(tick);
    },

    pause() {
      if (this.playing) cancelAnimationFrame(this.playing);
      this.playing = 0;
    },

    // After the new frame is painted, move the t markers of the ᾱ_t and log-SNR plots (class ddpm-rev-plot);
    // several frames within one display frame move them once.
    moveMarkers(m) {
      if (!m) return;
      const scheduled = this.pending !== null;
      this.pending = m;
      if (scheduled) return;
      requestAnimationFrame(() => setTimeout(() => {
        const latest = this.pending;
        this.pending = null;
        window.ddpmPlots.moveMarkers('.ddpm-rev-plot', latest.t, (key) => latest.values[key]);
      }, 0));
    },
  };
})();
