// Model text as safe HTML: markdown by `marked`, LaTeX by KaTeX, raw HTML shown as text.
// Math is cut out before markdown runs (so `_` and `*` inside it stay math) and put back after.

import { Marked } from "./vendor/marked.esm.js";
import katex from "./vendor/katex/katex.mjs";

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // The model's text is never trusted as HTML.
    html: (token) => escapeHtml(token.text),
    link(token) {
      const safe = /^(https?:|#|\/)/i.test(token.href);
      const text = this.parser.parseInline(token.tokens);
      return safe ? `<a href="${escapeHtml(token.href)}" rel="noopener noreferrer">${text}</a>` : text;
    },
    image: (token) => escapeHtml(token.text || ""),
  },
});

const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\$([^\s$](?:[^$\n]*?[^\s$])?)\$|\\\(([\s\S]+?)\\\)/g;

function renderMath(tex, displayMode) {
  try {
    return katex.renderToString(tex, { displayMode, throwOnError: false, output: "htmlAndMathml" });
  } catch {
    return `<code>${escapeHtml(tex)}</code>`;
  }
}

/** HTML of a markdown text with `$...$`, `$$...$$`, `\(...\)` and `\[...\]` math. */
export function renderMarkdown(text) {
  const pieces = [];
  const marked_text = String(text || "").replace(MATH, (_, block, block2, inline, inline2) => {
    const display = block !== undefined || block2 !== undefined;
    pieces.push(renderMath(block ?? block2 ?? inline ?? inline2, display));
    return `KATEXMATH${pieces.length - 1}KATEXMATH`;
  });
  const html = marked.parse(marked_text);
  return html.replace(/KATEXMATH(\d+)KATEXMATH/g, (_, i) => pieces[Number(i)]);
}

export { escapeHtml };
