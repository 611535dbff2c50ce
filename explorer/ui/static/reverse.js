// Reverse tab: after a scrubbed or played frame is painted, move the t markers of the ᾱ_t and log-SNR plots
// (class ddpm-rev-plot, explorer/ui/reverse.py). Several scrubs within one frame move the markers once.
window.ddpmReverse = {
  pending: null,
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
