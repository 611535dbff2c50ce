// Plot markers that follow the current t, shared by every tab (explorer/plots.py names the shapes).
// Layout shapes named "vline" (a vertical line at t) and "marker:<key>" (a circle at (t, value)) move with a
// cheap Plotly.relayout that redraws only them: no figure is re-sent from the server.
window.ddpmPlots = {
  // Move the t line and markers of the plotly figures inside `selector` to t; valueOf(key) gives a marker's
  // y value (null or undefined hides it, e.g. log-SNR = -inf).
  moveMarkers(selector, t, valueOf) {
    const P = window.Plotly;
    if (!P) return;
    document.querySelectorAll(selector + ' .js-plotly-plot').forEach((gd) => {
      const update = {};
      ((gd.layout && gd.layout.shapes) || []).forEach((sh, i) => {
        const name = sh.name || '';
        if (name === 'vline') {
          update[`shapes[${i}].x0`] = t;
          update[`shapes[${i}].x1`] = t;
        } else if (name.startsWith('marker:')) {
          const y = valueOf(name.slice(7));
          const shown = y !== null && y !== undefined;
          update[`shapes[${i}].xanchor`] = t;
          update[`shapes[${i}].yanchor`] = shown ? y : 0;
          update[`shapes[${i}].visible`] = shown;
        }
      });
      if (Object.keys(update).length) P.relayout(gd, update);
    });
  },
};
