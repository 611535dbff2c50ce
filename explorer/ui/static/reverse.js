// Reverse tab: while sampling, the newest frame arrives with the frames recorded since the previous one; when the
// run ends (or is stopped) every recorded frame (x_t, ε̂, x̂₀ as uint8 grids, the step's numbers and plot markers)
// arrives once (explorer/ui/reverse.py, frames_payload). The page keeps them, and the frame slider, ◀ ▶ and Play
// draw from them here, during the run too: no request per scrub. The grids are laid out as
// explorer.render.tile(min_side=1) does, so the canvases hold the same pixels as the server's reverse_view.
(() => {
  const SLIDER = '#reverse-frame input[type=range]';
  const NUMBER = '#reverse-frame input[type=number]';
  const KEYS = ['x_t', 'eps', 'x0_hat'];
  const PLAY_FPS = 30;
  const PLAY_SECONDS = 8; // a long run plays through in about this long (frames are skipped to keep 30/s)
  const HALF_FRAME_MS = 8;
  const RESTART_LATER_MS = 500;
  const STOP_AFTER_PRESS_MS = 250;

  // the server zlib-compresses the grids (explorer/ui/reverse.py, frames_payload)
  const inflate = async (s) => new Uint8Array(
    await new Response(new Blob([window.ddpmB64.u8(s)]).stream().pipeThrough(new DecompressionStream('deflate'))).arrayBuffer());

  window.ddpmReverse = {
    run: null, shown: -1, pending: null, playing: 0, drawn: 0, follow: true, wish: null, live: false, moving: false, queue: Promise.resolve(),
    listening: false, awaiting: false,

    // A chunk of frames from the server (explorer/ui/reverse.py, frames_payload): while sampling, the newest
    // frame (a preview) with the frames recorded since the previous one; when the run ends or is stopped, the
    // frames not sent before (every frame, when the page asks for it). The page keeps them all, so the slider
    // scrubs the frames recorded so far while the run goes on; the newest frame is shown only while the person
    // follows it (has not scrubbed back).
    append(json) {
      this.queue = this.queue.then(() => this.receive(json)).catch((e) => console.error(e));
      return this.queue;
    },

    async receive(json) {
      if (!json) return;
      const c = JSON.parse(json);
      if (!this.run || this.run.id !== c.run) {
        this.pause();
        this.run = { id: c.run, batch: c.batch, h: c.h, w: c.w, cols: c.cols, gap: c.gap, numSteps: c.num_steps,
                     frames: { x_t: [], eps: [], x0_hat: [] }, numbers: [], markers: [], known: 0 };
        this.shown = -1;
        this.follow = this.wish === null;
      }
      const r = this.run;
      r.finished = c.finished;
      r.known = Math.max(r.known, c.end); // the frames the server has recorded (more than held if one went missing)
      if (c.earlier) await this.keep(r, c.earlier);
      await this.keep(r, c);
      // Frames are still being recorded (set once this chunk's frames are kept: a frame chosen while the last
      // chunk is unpacked waits for it, rather than being cut to the frames held before it)
      this.live = c.preview;
      if (!c.preview) this.awaiting = false; // the run has ended
      const n = this.count();
      const range = document.querySelector(SLIDER);
      if (range) range.max = String(Math.max(n - 1, 1));
      if (n < c.end) { // a chunk went missing: show the newest frame without keeping it; the run's last chunk
        if (this.follow) await this.previewOnly(r, c); // carries only the frames not sent before, so then the
        if (!c.preview && !r.repairAsked) { // page asks for every frame (a hidden button: explorer/ui/reverse.py)
          r.repairAsked = true;
          const repair = document.getElementById('reverse-repair');
          if (repair) repair.click();
        }
      } else if (this.wish !== null) { // chosen before the page held that frame
        this.goTo(this.wish);
        if (this.wish <= n - 1 || !c.preview) this.wish = null;
      } else if (this.follow || this.shown < 0) {
        this.goTo(n - 1);
      } else {
        this.goTo(this.shown); // the person looks back: stay there (and put the slider back if it moved)
      }
      const root = document.querySelector('#reverse-viewer .ddpm-rev-viewer');
      if (root) { root.dataset.frames = String(n); root.dataset.run = String(r.id); } // (tests wait on them)
    },

    // Keep frames part.start … part.end - 1 that follow the ones held (ε̂ and x̂₀ start at min(start, last step)).
    async keep(r, part) {
      const have = r.numbers.length;
      if (part.start > have || part.end <= have) return;
      const size = r.batch * r.h * r.w;
      const bytes = {};
      for (const key of KEYS) bytes[key] = await inflate(part[key]);
      if (r.numbers.length !== have) return; // another chunk was kept meanwhile
      const stepsStart = Math.min(part.start, Math.min(part.end, r.numSteps) - 1);
      for (let k = have; k < part.end; k++) {
        for (const key of KEYS) {
          const i = key === 'x_t' ? k - part.start : Math.min(k, r.numSteps - 1) - stepsStart;
          r.frames[key].push(bytes[key].subarray(i * size, (i + 1) * size));
        }
        r.numbers.push(part.numbers[k - part.start]);
        r.markers.push(part.markers[k - part.start]);
      }
    },

    async previewOnly(r, c) {
      const frames = {};
      for (const key of KEYS) frames[key] = [await inflate(c[key])];
      if (!this.follow || this.run !== r) return; // a frame was chosen meanwhile (or a new run began): it stays
      this.paint({ ...r, frames }, 0, c.start, c.numbers[0], c.markers[0]);
      this.shown = -1; // what is shown is not a held frame
    },

    count() { return this.run ? this.run.numbers.length : 0; },

    // The page's own listeners, installed once, on the document (they serve the elements whenever Gradio adds
    // them, the Reverse tab's contents coming the first time it is opened): dragging
    // or keys on the range and typing in its number box draw at once (a value the server sets does not: each
    // chunk decides what is shown); Pause acts when pressed, not when the click completes (frames would play on
    // while the button is held). ◀ ▶ Play Pause (a keyboard's Enter too) are the page's own click listeners: a
    // Gradio js-only listener went through Gradio's event dispatch first, 77 ms median from click to painted frame
    // in Chromium on a 2-core machine.
    listen() {
      if (this.listening) return;
      this.listening = true;
      window.ddpmListenRange(SLIDER, (v) => this.show(v));
      window.ddpmListenRange(NUMBER, (v) => this.show(v));
      // Every Sample press also presses the hidden restart button, whose unqueued listener stops the session's
      // earlier run on the server (explorer/ui/reverse.py): a trigger of its own, so Gradio sends it beside the
      // queued run rather than after it. With no run of this page under way there is nothing to stop, and the
      // press (which the server counts) goes a moment later: sent at once, its request cost the new run's first
      // frame 70-100 ms on a 2-core machine.
      // A Stop counts on the server against the presses it has seen (explorer/ui/sampling.py, StopSwitch). So when
      // a press is still waiting, the Stop waits for it: the press goes now and the Stop a moment after it (sent
      // together, the server could take the Stop first, and a run waiting for the sampling slot, which another
      // person's run held, started anyway).
      const pressRestart = () => { const r = document.getElementById('reverse-restart'); if (r) r.click(); };
      const waiting = new Set();
      const restart = () => {
        const busy = this.awaiting || this.live;
        this.awaiting = true;
        const timer = setTimeout(() => { waiting.delete(timer); pressRestart(); }, busy ? 0 : RESTART_LATER_MS);
        waiting.add(timer);
      };
      const beforeStop = (e, stop) => {
        if (!waiting.size) return;
        e.stopImmediatePropagation();
        e.preventDefault();
        for (const timer of waiting) { clearTimeout(timer); pressRestart(); }
        waiting.clear();
        setTimeout(() => stop.click(), STOP_AFTER_PRESS_MS);
      };
      const acts = { 'reverse-prev': () => this.step(-1), 'reverse-next': () => this.step(1),
                     'reverse-play': () => this.play(), 'reverse-pause': () => this.pause(), 'reverse-sample': restart,
                     'reverse-stop': beforeStop };
      const button = (e) => (e.target instanceof Element ? e.target.closest('button[id]') : null);
      document.addEventListener('pointerdown', (e) => { if (button(e)?.id === 'reverse-pause') this.pause(); }, true);
      document.addEventListener('click', (e) => { const b = button(e); if (b && acts[b.id]) acts[b.id](e, b); }, true);
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
        this.moving = true; // the range's own listener hears this move: it is not the person's choice
        try { range.dispatchEvent(new Event('input', { bubbles: true })); } finally { this.moving = false; }
      }
    },

    step(delta) {
      this.pause();
      this.goTo(this.shown + delta);
      this.follow = this.shown >= this.count() - 1;
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

    // The person chose frame k (slider, its number box, keys): draw it. Moving on to the newest frame the server
    // has recorded follows the run again; any other choice (the frame shown included) stays where it is as frames
    // arrive. (The newest frame held is not enough: while a lost chunk is repaired, the page may hold only frame 0,
    // and choosing it then is a choice, not following.)
    show(kRaw) {
      const n = this.count();
      if (this.moving) return;
      const want = Math.max(0, Math.round(Number(kRaw) || 0));
      if (want > n - 1 && (this.live || !n)) { // not here yet: shown when it arrives
        this.wish = want;
        this.follow = false;
      }
      if (!n) return;
      const k = Math.min(n - 1, want);
      if (this.wish === null) this.follow = k >= this.run.known - 1 && k > this.shown; // known >= n
      this.draw(k);
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
      const interval = 1000 / PLAY_FPS;
      let due = performance.now(); // the first step at the next display frame: Play answers at once
      const tick = (now) => {
        if (!this.playing) return;
        // A display frame within half a 60 Hz frame of the due time draws, and the next is due one interval after
        // this one was (not after `now`): on a 60 Hz display every second frame draws, 30/s. Waiting for a full
        // interval since the last draw skipped to every third frame (20/s) whenever a frame came a little early.
        if (now >= due - HALF_FRAME_MS) {
          due += interval;
          if (due < now) due = now + interval; // after a stall, go on from now rather than catch up in a burst
          this.goTo(this.shown + stride);
          this.follow = this.shown >= this.count() - 1;
          if (this.follow) { this.playing = 0; return; }
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
  window.ddpmReverse.listen();
})();
