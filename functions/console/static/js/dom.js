// Building the page. Elements are made with createElement and filled with textContent only:
// no string ever becomes HTML (the page's Content-Security-Policy requires Trusted Types for
// that, and allows none, so innerHTML and friends would throw).

const SVG_NS = "http://www.w3.org/2000/svg";

/** An HTML element: h("a", {href: "#/runs", class: "x", on: {click: f}}, "text", child, …). */
export function h(tag, props = {}, ...children) {
  return assemble(document.createElement(tag), props, children);
}

/** An SVG element, as h() makes HTML ones. */
export function s(tag, props = {}, ...children) {
  return assemble(document.createElementNS(SVG_NS, tag), props, children);
}

function assemble(el, props, children) {
  let value;
  for (const [name, given] of Object.entries(props || {})) {
    if (given === null || given === undefined || given === false) continue;
    if (name === "on") {
      for (const [type, listener] of Object.entries(given)) el.addEventListener(type, listener);
    } else if (name === "dataset") {
      for (const [key, data] of Object.entries(given)) el.dataset[key] = String(data);
    } else if (name === "text") {
      el.textContent = String(given);
    } else if (name === "value" && !(el instanceof SVGElement) && el.tagName !== "DATA") {
      value = given; // set once the children (a select's options) are in
    } else {
      if (/^on/i.test(name) || name === "style") throw new Error(`refusing attribute ${name}`);
      if (name === "href" && !/^(#|https?:|\.\/)/.test(String(given))) throw new Error("refusing this href");
      el.setAttribute(name, given === true ? "" : String(given));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

/** Append children: nodes as they are, anything else as text. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

let counter = 0;
/** A unique id for label/field and aria-labelledby pairs. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field: a label and its control, tied by id. */
export function field(label, control, hint) {
  const id = control.id || uid("field");
  control.id = id;
  const hintEl = hint ? h("p", {class: "hint", id: `${id}-hint`, text: hint}) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", {class: "field"}, h("label", {for: id, text: label}), control, hintEl);
}

/** A message area for a form's outcome, announced to screen readers. */
export function messageArea() {
  return h("p", {class: "message", role: "status", "aria-live": "polite"});
}

export function showError(area, error) {
  area.classList.remove("ok");
  area.classList.add("error");
  area.textContent = error && error.message ? error.message : String(error);
}

export function showOk(area, text) {
  area.classList.remove("error");
  area.classList.add("ok");
  area.textContent = text;
}
