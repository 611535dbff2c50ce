// Compare tab: draws both sides' x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps in canvases while the
// shared "fraction t/T" slider moves, from the scene the server sent once (explorer/ui/compare.py, compare_scene):
// x_0, eps and, for every position of the slider, each side's t, coefficients and caption. The pixels equal the
// server's compare_view (a browser test checks this); the overlaid plots' fraction line follows.
(() => {
  const SLIDER = '#compare-fraction input[type=range]';
  const VIEW = '#compare-view .ddpm-cmp';
  const PLOTS = '.ddpm-cmp-plot';

  window.ddpmCompare = {
    scene: null, shown: -1, drawn: 0, plotsPending: false,

    load(json, fraction) {
      if (!json) return;
      const c = JSON.parse(json);
      const x0 = window.ddpmB64.f32(c.x0), eps = window.ddpmB64.f32(c.eps);
      // each side as a ddpmQSample scene indexed by the slider's position (not by t)
      c.sides = c.sides.map((s) => ({ ...s, w: c.w, h: c.h, c: c.c, x0, eps, xt: new Float32Array(x0.length),
                                      a32: Float32Array.from(s.coef.sqrt_alpha_bar),
                                      b32: Float32Array.from(s.coef.sqrt_one_minus_alpha_bar) }));
      this.scene = c;
      this.shown = -1;
      window.ddpmListenRange(SLIDER, (v) => this.show(v));
      this.show(fraction);
    },

    // The slider's value -> its position 0 … positions (the scene holds both sides' t at each).
    position(fRaw) {
      const n = this.scene.positions;
      return Math.max(0, Math.min(n, Math.round((Number(fRaw) || 0) * n)));
    },

    show(fRaw) {
      const c = this.scene, root = document.querySelector(VIEW);
      if (!c || !root) return;
      const i = this.position(fRaw);
      if (i === this.shown) return;
      for (const s of c.sides) {
        const canvas = root.querySelector(`canvas[data-side="${s.side}"]`);
        window.ddpmQSample.paint(canvas, s, window.ddpmQSample.at(s, i));
        canvas.dataset.t = String(s.t[i]);
        root.querySelector(`figcaption[data-side="${s.side}"]`).innerHTML =
          `<strong>${s.label}</strong><br>${s.lines[i]}`; // escaped on the server
      }
      root.dataset.position = String(i);
      this.shown = i;
      this.drawn++;
      this.movePlots(i / c.positions);
    },

    // The fraction line of the overlaid plots, after the images are painted; once per display frame.
    movePlots(fraction) {
      this.plotFraction = fraction;
      if (this.plotsPending) return;
      this.plotsPending = true;
      requestAnimationFrame(() => setTimeout(() => {
        this.plotsPending = false;
        window.ddpmPlots.moveMarkers(PLOTS, this.plotFraction, () => null);
      }, 0));
    },
  };
})();
