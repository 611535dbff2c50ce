// Forward tab: draws x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps in a canvas while "Timestep t"
// moves, from the scene (x_0, eps, the schedule's arrays) the server sent once. It repeats torch's float32
// operations exactly, so its pixels equal the server's render_forward (a browser test checks this).
// Ids and classes are those of explorer/ui/forward.py (SLIDER_ID, CANVAS_ID, LIVE_PLOT_CLASS, SKETCH_ID).
(() => {
  const SLIDER = '#timestep-t input[type=range]';
  const CANVAS_ID = 'ddpm-fwd-canvas';
  const LIVE_PLOTS = '.ddpm-live-plot';
  const SKETCH_ID = 'forward-sketch';
  const PLOT_INTERVAL_MS = 120; // markers and histogram follow the slider at most this often while dragging

  window.ddpmForward = {
    scene: null, t: 0, plotFrame: 0, drawn: 0, dragging: false,
    load(json, t) {
      if (!json) return;
      const p = window.ddpmQSample.load(JSON.parse(json));
      this.scene = p;
      this.shownT = -1;
      this.listen();
      this.show(t);
    },
    listen() {
      // (The Gradio .input event calls show() too; drawing the same t twice is skipped.)
      window.ddpmListenRange(SLIDER, (v) => this.show(v));
      const range = document.querySelector(SLIDER);
      if (range && !range.dataset.ddpmDrag) {
        range.dataset.ddpmDrag = '1';
        range.addEventListener('pointerdown', () => { this.dragging = true; });
        window.addEventListener('pointerup', () => { this.dragging = false; });
      }
    },
    // Gradio's change event: t changed in any way (drag, keys, typing, ↺, the server). Draw it, and return the t
    // for the math panel: t clamped to the scene's T, or the panel's t unchanged while a pointer drags.
    changed(tRaw, mathT) {
      this.show(tRaw);
      return this.dragging ? mathT : this.timestep(tRaw);
    },
    released(tRaw) {
      this.dragging = false;
      return this.timestep(tRaw);
    },
    // The Draw tab opened: pick the sketchpad's brush (Gradio starts with no tool, and a drag would draw nothing).
    selectBrush(tries = 60) {
      const pad = document.getElementById(SKETCH_ID);
      const brush = pad && pad.querySelector('button[aria-label="Brush"]');
      if (!brush || brush.offsetParent === null) {  // not laid out yet: the tab is still opening
        if (tries > 0) requestAnimationFrame(() => this.selectBrush(tries - 1));
        return;
      }
      if (pad.querySelector('.empty')) brush.click();  // the "select the draw tool" hint: no tool yet
    },
    timestep(tRaw) { return this.scene ? window.ddpmQSample.timestep(this.scene, tRaw) : Math.round(Number(tRaw) || 0); },
    compute(t) { return window.ddpmQSample.at(this.scene, t); },
    show(tRaw) {
      const p = this.scene, t = p ? window.ddpmQSample.timestep(p, tRaw) : -1;
      if (!p || t === this.shownT) return;
      this.t = t;
      const canvas = document.getElementById(CANVAS_ID);
      if (!canvas) return;
      window.ddpmQSample.paint(canvas, p, this.compute(t));
      canvas.dataset.t = String(t);
      this.shownT = t;
      this.drawn++;
      const root = canvas.closest('.ddpm-fwd');
      root.querySelector('[data-key="t"]').textContent = String(t);
      for (const key in p.text) {
        const cell = root.querySelector('[data-key="' + key + '"]');
        if (cell) cell.textContent = p.text[key][t];
      }
      this.schedulePlots();
    },
    schedulePlots() {
      // Plots move after the new image has been painted (rAF, then a task after the frame), and at most
      // every PLOT_INTERVAL_MS while dragging, so the main thread stays free for the next image.
      if (this.plotFrame) return;
      const wait = Math.max(0, (this.plotsAt || 0) + PLOT_INTERVAL_MS - performance.now());
      this.plotFrame = setTimeout(() => requestAnimationFrame(() => setTimeout(() => {
        this.plotFrame = 0; this.plotsAt = performance.now(); this.updatePlots();
      }, 0)), wait);
    },
    histogram(xt) {
      const p = this.scene, e = p.hist_edges, nb = e.length - 1, lo = e[0], hi = e[nb];
      const counts = new Array(nb).fill(0);
      for (let i = 0; i < xt.length; i++) {
        const v = xt[i];
        if (!(v >= lo && v <= hi)) continue;
        let k = Math.min(nb - 1, Math.floor((v - lo) / p.hist_width));
        if (v < e[k]) k--; else if (k < nb - 1 && v >= e[k + 1]) k++;
        counts[k]++;
      }
      return counts.map((n) => n / (xt.length * p.hist_width));
    },
    updatePlots() {
      const P = window.Plotly, p = this.scene, t = this.t;
      if (!P || !p) return;
      window.ddpmPlots.moveMarkers(LIVE_PLOTS, t, (key) => (p.arrays[key] ? p.arrays[key][t] : null));
      document.querySelectorAll(LIVE_PLOTS + ' .js-plotly-plot').forEach((gd) => {
        const hist = (gd.data || []).findIndex((tr) => tr.meta === 'hist');
        if (hist >= 0) P.restyle(gd, { y: [this.histogram(p.xt)] }, [hist]);
      });
    },
  };
})();
