// The 2-D lab's browser side (explorer/ui/lab2d.py): draws the point cloud x_t for any t from x_0 and ε sent once,
// the density of q(x_t) and the score arrows of the nearest precomputed frame, the reverse paths, the guidance sweep.
// x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps is repeated in float32 exactly as torch's q_sample does
// it, so the points equal the server's (tests compare them). Only functions are defined here; events call them.
window.ddpmLab2d = (() => {
  const SIZE = 480;  // canvas pixels per side
  const DENSITY_PX = 240;  // the density bands are computed at this resolution, drawn scaled
  const BANDS = 8;
  const CLASS_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];  // as explorer/lab2d/figures.py
  const POINT_COLOUR = '#333333';
  const RUN_COLOURS = { ddpm: '#d62728', ddim: '#1f77b4' };
  const ARROW_COLOURS = { learned: '#222222', exact: '#2ca02c', error: '#d62728' };
  const PATH_LINES = 60;  // particles whose whole path is drawn (the others show their position only)
  const b64ToF32 = (s) => window.ddpmB64.f32(s);
  const nearest = (ts, t) => {  // explorer.lab2d.scene.nearest_frame: the earlier frame on a tie
    let best = 0;
    for (let k = 1; k < ts.length; k++) if (Math.abs(ts[k] - t) < Math.abs(ts[best] - t)) best = k;
    return best;
  };
  const toPx = (v, view) => (v + view) / (2 * view) * SIZE;
  const toPy = (v, view) => (view - v) / (2 * view) * SIZE;
  const q = (sel) => document.querySelector(sel);
  const checked = (id) => { const el = document.getElementById(id); return !el || el.checked; };

  function drawArrows(ctx, grid, vec, k, count, scale, colour, view) {
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 1.2;
    ctx.beginPath();
    for (let i = 0; i < count; i++) {
      const x = toPx(grid[2 * i], view), y = toPy(grid[2 * i + 1], view);
      const dx = vec[2 * (k * count + i)] * scale, dy = -vec[2 * (k * count + i) + 1] * scale;
      const len = Math.hypot(dx, dy);
      if (len < 0.5) continue;
      const ex = x + dx, ey = y + dy, ux = dx / len, uy = dy / len, h = Math.min(5, 0.4 * len);
      ctx.moveTo(x, y); ctx.lineTo(ex, ey);
      ctx.moveTo(ex, ey); ctx.lineTo(ex - h * (ux - 0.5 * uy), ey - h * (uy + 0.5 * ux));
      ctx.moveTo(ex, ey); ctx.lineTo(ex - h * (ux + 0.5 * uy), ey - h * (uy - 0.5 * ux));
    }
    ctx.stroke();
  }

  function drawDots(ctx, xs, n, labels, view, size, colour) {
    // one path per colour: setting fillStyle per point would dominate the frame
    const groups = labels ? [...new Set(labels)] : [null];
    for (const g of groups) {
      ctx.fillStyle = g === null ? colour : CLASS_COLOURS[g % CLASS_COLOURS.length];
      ctx.beginPath();
      for (let i = 0; i < n; i++) {
        if (g !== null && labels[i] !== g) continue;
        ctx.rect(toPx(xs[2 * i], view) - size / 2, toPy(xs[2 * i + 1], view) - size / 2, size, size);
      }
      ctx.fill();
    }
  }

  function frame(ctx, view) {  // white background, axes through 0, a ±1 box for scale
    ctx.fillStyle = '#ffffff'; ctx.fillRect(0, 0, SIZE, SIZE);
    ctx.strokeStyle = '#e3e3e3'; ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(toPx(0, view), 0); ctx.lineTo(toPx(0, view), SIZE);
    ctx.moveTo(0, toPy(0, view)); ctx.lineTo(SIZE, toPy(0, view));
    ctx.rect(toPx(-1, view), toPy(1, view), toPx(1, view) - toPx(-1, view), toPy(-1, view) - toPy(1, view));
    ctx.stroke();
  }

  return {
    scene: null, shownT: -1, timings: [], drawn: 0, paths: null, shownStep: -1,

    // ------------------------------------------------------------ the point cloud at t
    load(json, t) {
      if (!json) return;
      const p = window.ddpmQSample.load(JSON.parse(json));
      if (p.density) { p.density.frames = b64ToF32(p.density.frames); p.density.cache = {}; }
      if (p.arrows) {
        for (const key of ['grid', 'learned', 'exact', 'error']) if (p.arrows[key]) p.arrows[key] = b64ToF32(p.arrows[key]);
      }
      this.scene = p;
      this.shownT = -1;
      // drawn now, or when the tab is first opened (its canvas and slider do not exist before)
      window.ddpmWhenPresent('lab2d-canvas', () => {
        if (this.scene !== p) return;  // a newer scene came meanwhile: it draws itself
        this.shownT = -1;
        this.listen();
        const range = q('#lab2d-t input[type=range]');
        this.show(range ? range.value : t);
      });
      this.warmDensity(p, 0);
    },
    warmDensity(p, k) {
      // Build every frame's density bands in idle moments after loading, so no drag pays for one.
      if (!p.density || p !== this.scene || k >= p.density.ts.length) return;
      this.densityImage(k);
      setTimeout(() => this.warmDensity(p, k + 1), 0);
    },
    listen() {
      // Draw straight from the range input's own input event (no trip through Gradio's queue); the time from the
      // event to the next animation frame is kept in `timings` (ms) for the page-timing benchmark.
      const range = q('#lab2d-t input[type=range]');
      if (range && !range.dataset.ddpmListening) {
        range.dataset.ddpmListening = '1';
        range.addEventListener('input', (e) => {
          this.show(range.value);
          requestAnimationFrame(() => this.timings.push(performance.now() - e.timeStamp));
        });
      }
      document.querySelectorAll('.ddpm-lab2d-layers input').forEach((box) => {
        if (box.dataset.ddpmListening) return;
        box.dataset.ddpmListening = '1';
        box.addEventListener('change', () => { this.shownT = -1; this.show(this.t); });
      });
    },
    pointsAt(t) { return window.ddpmQSample.at(this.scene, t); },
    densityImage(k) {  // log q(x_t) of frame k as translucent bands (bilinear on the grid), cached per frame
      const d = this.scene.density;
      if (d.cache[k]) return d.cache[k];
      const n = d.size, off = k * n * n, fr = d.frames;
      let max = -Infinity;
      for (let i = 0; i < n * n; i++) if (fr[off + i] > max) max = fr[off + i];
      const c = document.createElement('canvas'); c.width = DENSITY_PX; c.height = DENSITY_PX;
      const cx = c.getContext('2d'), img = cx.createImageData(DENSITY_PX, DENSITY_PX), px = img.data;
      for (let r = 0; r < DENSITY_PX; r++) {
        const gy = Math.min(n - 1, Math.max(0, (r + 0.5) / DENSITY_PX * n - 0.5)), y0 = Math.floor(gy), y1 = Math.min(n - 1, y0 + 1), fy = gy - y0;
        for (let col = 0; col < DENSITY_PX; col++) {
          const gx = Math.min(n - 1, Math.max(0, (col + 0.5) / DENSITY_PX * n - 0.5)), x0 = Math.floor(gx), x1 = Math.min(n - 1, x0 + 1), fx = gx - x0;
          const v = (1 - fy) * ((1 - fx) * fr[off + y0 * n + x0] + fx * fr[off + y0 * n + x1])
                  + fy * ((1 - fx) * fr[off + y1 * n + x0] + fx * fr[off + y1 * n + x1]);
          const band = Math.floor(Math.exp(v - max) * BANDS);  // 0 .. BANDS: level sets of the density
          const j = 4 * (r * DENSITY_PX + col);
          px[j] = 70; px[j + 1] = 130; px[j + 2] = 180; px[j + 3] = band * 18;
        }
      }
      cx.putImageData(img, 0, 0);
      d.cache[k] = c;
      return c;
    },
    show(tRaw) {
      const p = this.scene, t = p ? window.ddpmQSample.timestep(p, tRaw) : -1;
      if (!p || t === this.shownT) return;
      this.t = t;
      const canvas = document.getElementById('lab2d-canvas');
      if (!canvas) return;
      const ctx = canvas.getContext('2d'), view = p.view;
      frame(ctx, view);
      let densityT = '–', arrowT = '–';
      if (p.density && checked('lab2d-show-density')) {
        const k = nearest(p.density.ts, t);
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(this.densityImage(k), 0, 0, SIZE, SIZE);
        densityT = String(p.density.ts[k]);
      }
      const xt = this.pointsAt(t), labels = p.labels;
      drawDots(ctx, xt, p.n, labels, view, 3, POINT_COLOUR);
      if (p.arrows) {
        const A = p.arrows, k = nearest(A.ts, t), count = A.size * A.size;
        const base = A.exact || A.learned, lens = [];
        for (let i = 0; i < count; i++) lens.push(Math.hypot(base[2 * (k * count + i)], base[2 * (k * count + i) + 1]));
        lens.sort((u, v) => u - v);
        const p90 = lens[Math.floor(0.9 * (count - 1))] || 1;
        const scale = 0.9 * (SIZE / A.size) / p90;  // the 90th-percentile arrow spans 0.9 of a grid cell
        for (const key of ['exact', 'learned', 'error']) {
          if (A[key] && checked('lab2d-show-' + key)) drawArrows(ctx, A.grid, A[key], k, count, scale, ARROW_COLOURS[key], view);
        }
        arrowT = String(A.ts[k]);
      }
      canvas.dataset.t = String(t);
      this.shownT = t;
      this.drawn++;
      const root = canvas.closest('.ddpm-lab2d');
      const set = (key, text) => { const el = root.querySelector('[data-key="' + key + '"]'); if (el) el.textContent = text; };
      set('t', String(t)); set('alpha_bar', p.text.alpha_bar[t]); set('log_snr', p.text.log_snr[t]);
      set('density_t', densityT); set('arrow_t', arrowT);
    },

    // ------------------------------------------------------------ reverse paths, scrubbed
    loadPaths(json) {
      if (!json) return;
      const P = JSON.parse(json);
      for (const name in P.runs) P.runs[name].frames = b64ToF32(P.runs[name].frames);
      this.paths = P;
      this.shownStep = -1;
      const range = q('#lab2d-scrub');
      if (range && !range.dataset.ddpmListening) {
        range.dataset.ddpmListening = '1';
        range.addEventListener('input', () => this.showPaths(range.value));
      }
      document.querySelectorAll('.ddpm-lab2d-runs input').forEach((box) => {
        if (box.dataset.ddpmListening) return;
        box.dataset.ddpmListening = '1';
        box.addEventListener('change', () => { this.shownStep = -1; this.showPaths(range ? range.value : 1000); });
      });
      this.showPaths(range ? range.value : 1000);
    },
    pathFrame(run, step) {  // the frame a run shows at scrub position step (0 = start x_T, 1000 = end x_0)
      return Math.round(Math.max(0, Math.min(1000, step)) / 1000 * (run.f - 1));
    },
    showPaths(stepRaw) {
      const P = this.paths, canvas = document.getElementById('lab2d-paths-canvas');
      if (!P || !canvas) return;
      const step = Math.round(Number(stepRaw) || 0);
      if (step === this.shownStep) return;
      const ctx = canvas.getContext('2d'), view = 3;
      frame(ctx, view);
      const label = [];
      for (const name of ['ddpm', 'ddim']) {
        const run = P.runs[name];
        if (!run || !checked('lab2d-run-' + name)) continue;
        const k = this.pathFrame(run, step), n = run.n, fr = run.frames, colour = RUN_COLOURS[name];
        const at = (f, i) => [toPx(fr[2 * (f * n + i)], view), toPy(fr[2 * (f * n + i) + 1], view)];
        ctx.globalAlpha = name === 'ddpm' ? 0.2 : 0.6; ctx.strokeStyle = colour; ctx.lineWidth = 1;  // DDPM zigzags: fainter
        ctx.beginPath();
        for (let i = 0; i < Math.min(n, PATH_LINES); i++) {
          let [x, y] = at(0, i); ctx.moveTo(x, y);
          for (let f = 1; f <= k; f++) { [x, y] = at(f, i); ctx.lineTo(x, y); }
        }
        ctx.stroke();
        ctx.globalAlpha = 1;
        ctx.strokeStyle = '#999999'; ctx.beginPath();  // start x_T: hollow circles
        for (let i = 0; i < Math.min(n, PATH_LINES); i++) { const [x, y] = at(0, i); ctx.moveTo(x + 2.5, y); ctx.arc(x, y, 2.5, 0, 2 * Math.PI); }
        ctx.stroke();
        ctx.strokeStyle = colour; ctx.beginPath();  // end x_0: crosses
        for (let i = 0; i < n; i++) {
          const [x, y] = at(run.f - 1, i);
          ctx.moveTo(x - 2.5, y - 2.5); ctx.lineTo(x + 2.5, y + 2.5); ctx.moveTo(x - 2.5, y + 2.5); ctx.lineTo(x + 2.5, y - 2.5);
        }
        ctx.stroke();
        ctx.fillStyle = colour;  // now: filled dots
        for (let i = 0; i < n; i++) { const [x, y] = at(k, i); ctx.fillRect(x - 2, y - 2, 4, 4); }
        label.push(name.toUpperCase() + ' t = ' + run.ts[k]);
      }
      canvas.dataset.step = String(step);
      this.shownStep = step;
      const text = q('#lab2d-scrub-label');
      if (text) text.textContent = label.join(' · ');
    },

    // ------------------------------------------------------------ guidance sweep: small multiples
    loadSweep(json) {
      const root = q('#lab2d-sweep');
      if (!json || !root) return;
      const S = JSON.parse(json);
      root.replaceChildren();
      for (const row of S.rows) {
        const pts = b64ToF32(row.frames), n = S.n;
        const line = document.createElement('div'); line.className = 'ddpm-lab2d-sweep-row';
        const name = document.createElement('div'); name.className = 'ddpm-lab2d-sweep-name'; name.textContent = row.name;
        line.appendChild(name);
        S.ws.forEach((w, j) => {
          const fig = document.createElement('figure');
          const c = document.createElement('canvas'); c.width = SIZE; c.height = SIZE;
          const ctx = c.getContext('2d');
          frame(ctx, 3);
          drawDots(ctx, pts.subarray(2 * n * j, 2 * n * (j + 1)), n, null, 3, 5, CLASS_COLOURS[S.class % 4]);
          const cap = document.createElement('figcaption'); cap.textContent = 'w = ' + w;
          fig.append(c, cap);
          line.appendChild(fig);
        });
        root.appendChild(line);
      }
      root.dataset.loaded = String(S.rows.length);
    },
  };
})();
