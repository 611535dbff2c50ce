// Step microscope tab: every frame of a recorded one-sample run arrives once (explorer/ui/step_lab.py, payload):
// the views as uint8 frames, each step's numbers as HTML built and escaped on the server, the spectra, and the
// floats the pixel inspector reads. The frame slider, ◀ ▶ and a click on x_t redraw everything here: no
// request. No formula is computed here except drawing a Gaussian density N(mean, std²) from the server's
// mean and std (the step_lab_pixel API returns the same numbers and curves).
(() => {
  const SLIDER = '#steplab-frame input[type=range]';
  const ROOT = '#steplab-view .ddpm-steplab';
  const GRID_POINTS = 201; // explorer.steplab.MAX_PIXEL_GRID
  const COLORS = { q_hat: '#1f77b4', q_true: '#2ca02c', p: '#ff7f0e', drawn: '#d62728', x_t: '#888', x0_hat: '#1f77b4' };
  const NAMES = { q_hat: 'q(x_prev | x_t, x̂₀)', q_true: 'q(x_prev | x_t, x₀) true x₀', p: 'p_θ(x_prev | x_t), the sampler', drawn: 'drawn' };

  const inflate = async (s) => new Uint8Array(
    await new Response(new Blob([window.ddpmB64.u8(s)]).stream().pipeThrough(new DecompressionStream('deflate'))).arrayBuffer());

  // explorer.steplab.density_grid: ±4 std around each mean and the drawn value, 5 % padding
  const densityGrid = (px) => {
    let lo = px.drawn, hi = px.drawn;
    for (const key of ['q_hat', 'q_true', 'p']) {
      const d = px[key];
      if (d) { lo = Math.min(lo, d.mean - 4 * d.std); hi = Math.max(hi, d.mean + 4 * d.std); }
    }
    const pad = Math.max(hi - lo, 0.05) * 0.05, a = lo - pad, b = hi + pad;
    return Array.from({ length: GRID_POINTS }, (_, i) => a + (b - a) * i / (GRID_POINTS - 1));
  };
  const density = (x, d) => Math.exp(-0.5 * ((x - d.mean) / d.std) ** 2) / (d.std * Math.sqrt(2 * Math.PI));
  const fmt = (v) => (v === null || v === undefined) ? '–' : Number(v).toPrecision(4);

  window.ddpmStepLab = {
    run: null, shown: -1, pixel: [14, 14], drawn: 0,

    async load(json) {
      if (!json) return;
      const c = JSON.parse(json);
      const r = { ...c, views: {}, floats: {}, size: c.h * c.w };
      for (const key in c.views) r.views[key] = await inflate(c.views[key]);
      for (const key in c.floats) r.floats[key] = new Float32Array((await inflate(c.floats[key])).buffer);
      this.run = r;
      this.shown = -1;
      this.pixel = [Math.min(this.pixel[0], c.h - 1), Math.min(this.pixel[1], c.w - 1)];
      this.listen();
      const range = document.querySelector(SLIDER);
      if (range) range.max = String(Math.max(c.count - 1, 1));
      const root = document.querySelector(ROOT);
      if (!root) return;
      root.classList.toggle('ddpm-steplab-img2img', Boolean(c.views.x0_true));
      root.dataset.count = String(c.count); // how many frames the page holds (tests wait on it)
      this.goTo(0);
    },

    listen() {
      window.ddpmListenRange(SLIDER, (v) => this.show(v));
      const canvas = document.querySelector(`${ROOT} canvas[data-key="x_t"]`);
      if (canvas && !canvas.dataset.ddpmListening) {
        canvas.dataset.ddpmListening = '1';
        canvas.addEventListener('click', (ev) => {
          const r = this.run, box = canvas.getBoundingClientRect();
          if (!r) return;
          const row = Math.floor((ev.clientY - box.top) / box.height * r.h);
          const col = Math.floor((ev.clientX - box.left) / box.width * r.w);
          this.pick(row, col);
        });
      }
    },

    goTo(k) {
      const r = this.run;
      if (!r) return;
      k = Math.max(0, Math.min(r.count - 1, Math.round(Number(k) || 0)));
      this.draw(k);
      const range = document.querySelector(SLIDER);
      if (range && Number(range.value) !== k) {
        range.value = String(k);
        range.dispatchEvent(new Event('input', { bubbles: true }));
      }
    },
    step(delta) { this.goTo(this.shown + delta); },
    fromSlider() { const range = document.querySelector(SLIDER); if (range) this.show(range.value); },
    show(kRaw) {
      const r = this.run;
      if (!r) return;
      this.draw(Math.max(0, Math.min(r.count - 1, Math.round(Number(kRaw) || 0))));
    },

    // The person clicked pixel (row, col) of x_t (kept inside the image).
    pick(row, col) {
      const r = this.run;
      if (!r) return;
      this.pixel = [Math.max(0, Math.min(r.h - 1, row)), Math.max(0, Math.min(r.w - 1, col))];
      if (this.shown >= 0) this.drawPixel(this.shown);
    },

    draw(k) {
      const r = this.run, root = document.querySelector(ROOT);
      if (!r || !root || k === this.shown) return;
      root.querySelectorAll('canvas[data-key]').forEach((canvas) => {
        const bytes = r.views[canvas.dataset.key];
        if (!bytes) return;
        const frame = canvas.dataset.key === 'x0_true' ? bytes : bytes.subarray(k * r.size, (k + 1) * r.size);
        this.gray(canvas, frame, r.w, r.h);
      });
      const labels = r.labels[k];
      for (const key in labels) {
        const cap = root.querySelector(`[data-caption="${key}"]`);
        if (cap) cap.textContent = labels[key];
      }
      root.querySelector('.ddpm-steplab-numbers').innerHTML = r.numbers[k]; // built and escaped on the server
      this.drawPixel(k);
      this.drawSpectrum(k);
      root.dataset.frame = String(k);
      this.shown = k;
      this.drawn++;
    },

    gray(canvas, bytes, w, h) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; canvas.ddpmImage = null; }
      const ctx = canvas.getContext('2d');
      if (!canvas.ddpmImage) canvas.ddpmImage = ctx.createImageData(w, h);
      const px = canvas.ddpmImage.data;
      for (let i = 0; i < w * h; i++) { const g = bytes[i]; px[4 * i] = g; px[4 * i + 1] = g; px[4 * i + 2] = g; px[4 * i + 3] = 255; }
      ctx.putImageData(canvas.ddpmImage, 0, 0);
    },

    // What the step_lab_pixel API returns for frame k at the chosen pixel (its means, stds and drawn value).
    pixelData(k) {
      const r = this.run, [row, col] = this.pixel, i = k * r.size + row * r.w + col;
      const qStd = r.q_std[k];
      return {
        frame: k, row, col, t: r.t[k], x_t: r.floats.x_t[i], x0_hat: r.floats.x0_hat[i],
        q_hat: { mean: r.floats.q_mean[i], std: qStd },
        q_true: r.floats.q_true_mean ? { mean: r.floats.q_true_mean[i], std: qStd } : null,
        p: { mean: r.floats.mean[i], std: r.sigma[k] },
        drawn: r.floats.x_t[i + r.size],
      };
    },

    axes(ctx, W, H) {
      ctx.clearRect(0, 0, W, H);
      ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, W, H);
      ctx.strokeStyle = '#bbb'; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(30, H - 20); ctx.lineTo(W - 5, H - 20); ctx.stroke();
      ctx.font = '11px sans-serif';
    },

    drawPixel(k) {
      const root = document.querySelector(ROOT), r = this.run;
      const canvas = root && root.querySelector('canvas[data-plot="density"]');
      if (!canvas || !r) return;
      const px = this.pixelData(k), grid = densityGrid(px);
      const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
      this.axes(ctx, W, H);
      const lo = grid[0], hi = grid[grid.length - 1], X = (x) => 30 + (x - lo) / (hi - lo) * (W - 40);
      const curves = {};
      let top = 0;
      for (const key of ['q_hat', 'q_true', 'p']) {
        const d = px[key];
        if (d && d.std > 0) { curves[key] = grid.map((x) => density(x, d)); top = Math.max(top, ...curves[key]); }
      }
      top = top || 1;
      const Y = (y) => H - 20 - y / top * (H - 45);
      let legend = 0;
      const label = (key) => { ctx.fillStyle = COLORS[key]; ctx.fillText(NAMES[key], 36, 14 + 13 * legend++); };
      for (const key of ['q_hat', 'q_true', 'p']) {
        const d = px[key];
        if (!d) continue;
        ctx.strokeStyle = COLORS[key]; ctx.lineWidth = key === 'p' ? 1.5 : 2.5;
        ctx.setLineDash(key === 'p' ? [5, 3] : []);
        ctx.beginPath();
        if (curves[key]) curves[key].forEach((y, j) => (j ? ctx.lineTo(X(grid[j]), Y(y)) : ctx.moveTo(X(grid[j]), Y(y))));
        else { ctx.moveTo(X(d.mean), H - 20); ctx.lineTo(X(d.mean), 25); } // σ = 0: a point mass
        ctx.stroke();
        label(key);
      }
      ctx.setLineDash([]);
      ctx.strokeStyle = COLORS.drawn; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(X(px.drawn), H - 20); ctx.lineTo(X(px.drawn), H - 60); ctx.stroke();
      label('drawn');
      ctx.fillStyle = '#333';
      ctx.fillText(fmt(lo), 30, H - 6); ctx.textAlign = 'right'; ctx.fillText(fmt(hi), W - 5, H - 6); ctx.textAlign = 'left';
      this.drawSeries(k);
      const cap = root.querySelector('.ddpm-steplab-pixel-caption');
      cap.textContent = `pixel (row ${px.row}, column ${px.col}) at t = ${px.t}: densities of its next value`;
      const dist = (d) => (d ? `N(${fmt(d.mean)}, ${fmt(d.std)}²)` : '–');
      root.querySelector('.ddpm-steplab-pixel').textContent =
        `x_t = ${fmt(px.x_t)}, x̂₀ = ${fmt(px.x0_hat)} · q(·|x_t, x̂₀) = ${dist(px.q_hat)}` +
        (px.q_true ? ` · q(·|x_t, x₀) = ${dist(px.q_true)}` : '') +
        ` · p_θ = ${dist(px.p)}${px.p.std > 0 ? '' : ' (no noise: a point)'} · drawn ${fmt(px.drawn)}`;
      root.dataset.pixel = JSON.stringify(px); // what the page shows, for the tests to compare with the server
    },

    drawSeries(k) {
      const root = document.querySelector(ROOT), r = this.run;
      const canvas = root.querySelector('canvas[data-plot="series"]');
      const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
      this.axes(ctx, W, H);
      const [row, col] = this.pixel, n = r.count, at = (a, j) => a[j * r.size + row * r.w + col];
      let lo = -1, hi = 1;
      for (let j = 0; j < n; j++) { const v = at(r.floats.x_t, j); lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const X = (j) => 30 + (n > 1 ? j / (n - 1) : 0.5) * (W - 40), Y = (v) => H - 20 - (v - lo) / (hi - lo) * (H - 30);
      for (const key of ['x_t', 'x0_hat']) {
        ctx.strokeStyle = COLORS[key]; ctx.lineWidth = 1.5;
        ctx.beginPath();
        for (let j = 0; j < n; j++) (j ? ctx.lineTo(X(j), Y(at(r.floats[key], j))) : ctx.moveTo(X(j), Y(at(r.floats[key], j))));
        ctx.stroke();
      }
      ctx.strokeStyle = '#d62728'; ctx.beginPath(); ctx.moveTo(X(k), 5); ctx.lineTo(X(k), H - 20); ctx.stroke();
      ctx.fillStyle = '#333';
      ctx.fillText(`t = ${r.t[0]}`, 30, H - 6); ctx.textAlign = 'right'; ctx.fillText(`t = ${r.t[n - 1]}`, W - 5, H - 6);
      ctx.fillText(fmt(hi), 28, 12); ctx.fillText(fmt(lo), 28, H - 22); ctx.textAlign = 'left';
    },

    drawSpectrum(k) {
      const root = document.querySelector(ROOT), r = this.run;
      const canvas = root.querySelector('canvas[data-plot="spectrum"]');
      if (!canvas) return;
      const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
      this.axes(ctx, W, H);
      const signal = r.spectra.signal[k], xt = r.spectra.x_t[k], noise = r.spectra.noise[k], K = signal.length;
      const logs = [...signal.slice(1), ...xt.slice(1), noise].filter((v) => v > 0).map(Math.log10);
      const lo = Math.max(Math.min(...logs), -8), hi = Math.max(...logs) + 0.2;
      const X = (f) => 30 + (f - 1) / (K - 2) * (W - 40), Y = (v) => H - 20 - (Math.log10(Math.max(v, 1e-8)) - lo) / (hi - lo) * (H - 30);
      const line = (arr, color) => {
        ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
        for (let f = 1; f < K; f++) (f > 1 ? ctx.lineTo(X(f), Y(arr[f])) : ctx.moveTo(X(f), Y(arr[f])));
        ctx.stroke();
      };
      line(xt, COLORS.x_t);
      line(signal, COLORS.x0_hat);
      ctx.strokeStyle = '#d62728'; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(X(1), Y(noise)); ctx.lineTo(X(K - 1), Y(noise)); ctx.stroke();
      const cross = r.crossover[k];
      if (cross !== null) {
        ctx.setLineDash([4, 3]); ctx.strokeStyle = '#333'; ctx.beginPath(); ctx.moveTo(X(cross), 5); ctx.lineTo(X(cross), H - 20); ctx.stroke(); ctx.setLineDash([]);
      }
      ctx.fillStyle = '#333';
      ctx.fillText('1', X(1), H - 6); ctx.textAlign = 'right'; ctx.fillText(`${K - 1} cycles / image`, W - 5, H - 6); ctx.textAlign = 'left';
      ctx.fillText(`10^${hi.toFixed(1)}`, 2, 12); ctx.fillText(`10^${lo.toFixed(1)}`, 2, H - 22);
      root.querySelector('.ddpm-steplab-spectrum-text').textContent = cross === null
        ? `At t = ${r.t[k]} the signal stays above the noise level ${fmt(noise)} at every frequency shown.`
        : `At t = ${r.t[k]} the signal drops under the noise (1 − ᾱ_t = ${fmt(noise)}) from ${cross} cycles / image on: ` +
          'finer detail than that is still undecided (coarse-to-fine).';
    },
  };
})();
