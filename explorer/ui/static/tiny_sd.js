// Tiny SD tab: draws one sampling run's frames (sent once as uint8 arrays) into canvases as the step slider moves.
window.ddpmTinySd = {
  scene: null,
  k: 0,
  sample: 0,
  decode(b64) { return window.ddpmB64.u8(b64); },
  // A run's outputs (explorer/ui/tiny_sd.py, sample_run) carry the frames recorded since the last output
  // (start > 0: appended to those held; start = 0: a new run). A part that does not follow the frames held (one
  // went missing) only lights its stage, and the run's last part then asks the server for every frame (a hidden
  // button, tiny_sd_frames), which comes back as one scene with start = 0.
  load(sceneJson) {
    if (!sceneJson) return;
    let s = JSON.parse(sceneJson);
    s.latentBytes = this.decode(s.latent);
    s.x0Bytes = this.decode(s.x0_hat);
    s.xtBytes = this.decode(s.xt);
    s.attnBytes = this.decode(s.attention);
    if (s.start > 0) {
      const p = this.scene;
      if (!p || p.run !== s.run || p.frames !== s.start) {
        this.light(s.stage);
        if (s.stage === 'done') document.getElementById('tiny-sd-repair')?.click();
        return;
      }
      const join = (a, b) => { const c = new Uint8Array(a.length + b.length); c.set(a); c.set(b, a.length); return c; };
      s = { ...s, start: 0, t: p.t.concat(s.t), alpha_bar: p.alpha_bar.concat(s.alpha_bar),
            log_snr: p.log_snr.concat(s.log_snr), share: p.share.concat(s.share),
            padding_share: p.padding_share.concat(s.padding_share),
            latentBytes: join(p.latentBytes, s.latentBytes), x0Bytes: join(p.x0Bytes, s.x0Bytes),
            xtBytes: join(p.xtBytes, s.xtBytes), attnBytes: join(p.attnBytes, s.attnBytes) };
    }
    const root = document.querySelector('#tiny-sd-view .tsd-view');
    if (!root) return;
    const follow = !this.scene || this.k >= this.scene.frames - 1;  // keep showing the newest step while it runs
    this.scene = s;
    this.light(s.stage);
    const step = root.querySelector('.tsd-step');
    const pick = root.querySelector('.tsd-sample');
    step.max = String(Math.max(0, s.frames - 1));
    pick.max = String(Math.max(0, s.n - 1));
    if (!root.dataset.wired) {
      root.dataset.wired = '1';
      step.addEventListener('input', () => this.show(Number(step.value)));
      pick.addEventListener('input', () => { this.sample = Number(pick.value); this.show(this.k); });
    }
    this.buildTokens(root, s);
    if (this.sample >= s.n) this.sample = 0;
    const k = follow ? s.frames - 1 : Math.min(this.k, s.frames - 1);
    if (s.frames > 0) this.show(k);
  },
  light(stage) {
    document.querySelectorAll('#tiny-sd-pipeline [data-stage]').forEach((el) => {
      el.classList.toggle('tsd-active', el.dataset.stage === stage);
    });
  },
  buildTokens(root, s) {
    const box = root.querySelector('.tsd-attn');
    box.replaceChildren();
    s.tokens.forEach((tok, j) => {
      const cell = document.createElement('figure');
      const c = document.createElement('canvas');
      c.width = 7; c.height = 7; c.dataset.token = String(j);
      const cap = document.createElement('figcaption');
      cap.textContent = tok;  // text, never markup
      if (s.unknown[j]) cap.classList.add('tsd-unknown');
      const share = document.createElement('span');
      share.className = 'tsd-share';
      cap.appendChild(document.createElement('br'));
      cap.appendChild(share);
      cell.append(c, cap);
      box.appendChild(cell);
    });
  },
  paint(canvas, bytes, offset, w, h) {
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(w, h);
    const px = img.data;
    for (let j = 0; j < w * h; j++) {
      const g = bytes[offset + j];
      px[4 * j] = g; px[4 * j + 1] = g; px[4 * j + 2] = g; px[4 * j + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  },
  show(k) {
    const s = this.scene;
    const root = document.querySelector('#tiny-sd-view .tsd-view');
    if (!s || !root || s.frames === 0) return;
    k = Math.max(0, Math.min(s.frames - 1, Math.round(k)));
    this.k = k;
    const i = this.sample, n = s.n, L = s.tokens.length;
    root.querySelectorAll('.tsd-latent canvas').forEach((c, ch) => {
      this.paint(c, s.latentBytes, ((k * n + i) * 4 + ch) * 49, 7, 7);
    });
    this.paint(root.querySelector('canvas.tsd-x0'), s.x0Bytes, (k * n + i) * 784, 28, 28);
    this.paint(root.querySelector('canvas.tsd-xt'), s.xtBytes, (k * n + i) * 784, 28, 28);
    root.querySelectorAll('.tsd-attn canvas').forEach((c) => {
      const j = Number(c.dataset.token);
      this.paint(c, s.attnBytes, ((k * n + i) * L + j) * 49, 7, 7);
      c.parentElement.querySelector('.tsd-share').textContent = (100 * s.share[k][i][j]).toFixed(1) + ' %';
    });
    root.querySelector('[data-key="padding"]').textContent = (100 * s.padding_share[k][i]).toFixed(1) + ' %';
    root.querySelector('.tsd-step').value = String(k);
    root.querySelector('.tsd-sample').value = String(i);
    root.querySelector('[data-key="step"]').textContent = (k + 1) + ' / ' + s.frames;
    root.querySelector('[data-key="t"]').textContent = String(s.t[k]);
    root.querySelector('[data-key="alpha_bar"]').textContent = s.alpha_bar[k];
    root.querySelector('[data-key="log_snr"]').textContent = s.log_snr[k];
    root.querySelector('[data-key="sample"]').textContent = String(i + 1);
    root.dataset.shown = k + ':' + i;
  },
};
