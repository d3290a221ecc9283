// Appended to a copy of report.html or comparison.html by `cargo xtask
// flame-check`: after load, it measures what Chromium laid out (plots'
// labels, sideways scrolling, wrapped table rows, <pre> boxes) and writes
// the findings as JSON into a pre element (id layout-check), which --dump-dom prints.
window.addEventListener('load', () => {
  const found = { plots: 0, texts: 0, clipped: [], overlapping: [], scrolling: [], rows: 0, wrapped: [], pres: 0 };
  const box = (r) => `[${r.left.toFixed(1)}, ${r.top.toFixed(1)}, ${r.right.toFixed(1)}, ${r.bottom.toFixed(1)}]`;
  // Sub-pixel contact (anti-aliasing, rounding) is not an overlap.
  const slack = 0.5;
  for (const figure of document.querySelectorAll('figure.plot')) {
    const svg = figure.querySelector('svg');
    if (!svg) continue;
    found.plots += 1;
    const name = (figure.querySelector('figcaption') || {}).textContent || 'a plot';
    const frame = svg.getBoundingClientRect();
    const texts = Array.from(svg.querySelectorAll('text'))
      .map((element) => ({ text: element.textContent.trim(), rect: element.getBoundingClientRect() }))
      .filter((t) => t.text !== '');
    found.texts += texts.length;
    // An inline <svg> hides what falls outside its viewport: a clipped label.
    for (const t of texts) {
      const r = t.rect;
      if (r.left < frame.left - slack || r.right > frame.right + slack ||
          r.top < frame.top - slack || r.bottom > frame.bottom + slack) {
        found.clipped.push(`${name}: "${t.text}" at ${box(r)} outside ${box(frame)}`);
      }
    }
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i].rect, b = texts[j].rect;
        const width = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const height = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (width > slack && height > slack) {
          found.overlapping.push(`${name}: "${texts[i].text}" ${box(a)} and "${texts[j].text}" ${box(b)}`);
        }
      }
    }
  }
  // A horizontal scroll bar: the page's, or any box that scrolls sideways.
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth) {
    found.scrolling.push(`the page: ${page.scrollWidth} px wide in a ${page.clientWidth} px window`);
  }
  for (const element of document.body.querySelectorAll('*')) {
    const overflow = getComputedStyle(element).overflowX;
    if ((overflow === 'auto' || overflow === 'scroll') && element.scrollWidth > element.clientWidth) {
      found.scrolling.push(`<${element.tagName.toLowerCase()}>: ${element.scrollWidth} px of content in ${element.clientWidth} px`);
    }
  }
  // A table row whose cell breaks its figures over two lines or more
  // (a note under a row is prose, and wraps at the page's width).
  for (const row of document.querySelectorAll('table tr')) {
    found.rows += 1;
    for (const cell of Array.from(row.cells).filter((c) => !c.classList.contains('note'))) {
      const range = document.createRange();
      range.selectNodeContents(cell);
      // One rect per line box; rects of one line differ by a pixel or two.
      const tops = Array.from(range.getClientRects()).map((r) => r.top).sort((a, b) => a - b);
      const lines = tops.filter((top, i) => i === 0 || top - tops[i - 1] > 4).length;
      if (lines > 1) {
        found.wrapped.push(`"${cell.textContent.trim().slice(0, 60)}" in ${lines} lines`);
      }
    }
  }
  found.pres = document.querySelectorAll('pre').length;
  const result = document.createElement('pre');
  result.id = 'layout-check';
  result.textContent = JSON.stringify(found);
  document.body.appendChild(result);
});
