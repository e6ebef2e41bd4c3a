// Pointing at a version (props from ui/selection_view.py: SelectionDesk.props, and
// candidate_props for a question). In "select" mode: a click
// includes a point, shift-click (or the Exclude toggle, for touch screens) excludes one, a drag
// draws a box, the brush and the eraser paint free-hand; each gesture goes to the server, which
// segments it and answers with every selection's overlay in the same round trip. Selections are
// numbered and coloured; each has an instruction field, refine buttons, and a place in the
// order (a later one wins where two overlap). From the keyboard: Tab to the picture, the arrows
// move a cursor, Enter includes the point under it and Shift+Enter excludes it (the same
// gesture a click sends). In "choose" mode: the candidates of a "which one?" question as
// numbered boxes; a click on a box or its number answers, a click beside them says so.
import { useEffect, useRef, useState } from "react";

const DRAG_PX = 6; // a press that moves further on screen is a box or a stroke, not a click
const POLL_MS = 1000; // how often a canvas whose picture is still being prepared asks again
const KEY_STEP = 0.025; // an arrow press moves the keyboard cursor this share of the picture
const KEY_MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const BESIDE_BOXES = "That spot is in none of the numbered boxes: click inside a box or on its " +
  "number, or answer with a button below.";
const BESIDE_PICTURE = "That click was beside the picture: click on the picture itself.";

const STYLE = `
.pa-select { display: flex; flex-direction: column; gap: 8px; width: 100%; font-size: 0.875rem; }
.pa-select-stage { width: 100%; }
.pa-select-box { position: relative; width: 100%; touch-action: none; user-select: none;
  cursor: crosshair; line-height: 0; }
.pa-select-box img { display: block; width: 100%; height: auto; }
.pa-select-box:focus-visible { outline: 3px solid hsl(var(--ring)); outline-offset: 2px; }
.pa-select-cursor { position: absolute; width: 22px; height: 22px; transform: translate(-50%, -50%);
  border: 2px solid white; border-radius: 50%; pointer-events: none;
  box-shadow: 0 0 0 2px rgb(0 0 0 / 0.7), inset 0 0 0 2px rgb(0 0 0 / 0.7); }
.pa-select[data-closed="true"] .pa-select-pick,
.pa-select[data-closed="true"] .pa-select-candidate { opacity: 0.45; cursor: default; }
.pa-select-box .pa-select-mask { position: absolute; inset: 0; height: 100%; pointer-events: none; }
.pa-select-number { position: absolute; transform: translate(-50%, -50%); min-width: 26px;
  height: 26px; padding: 0 6px; border-radius: 13px; border: 2px solid white;
  font: 700 15px/22px system-ui, sans-serif; text-align: center; pointer-events: none;
  box-shadow: 0 0 3px rgb(0 0 0 / 0.8); }
.pa-select-candidate { position: absolute; border: 3px solid; border-radius: 4px; padding: 0;
  background: transparent; cursor: pointer; box-shadow: 0 0 0 1px rgb(0 0 0 / 0.6); }
.pa-select-candidate:hover, .pa-select-candidate:focus-visible { background: rgb(255 255 255 / 0.2); }
.pa-select-pick { transform: none; pointer-events: auto; cursor: pointer; }
.pa-select-status { position: absolute; left: 8px; top: 8px; padding: 2px 8px; border-radius: 4px;
  font: 13px/20px system-ui, sans-serif; color: white; background: rgb(0 0 0 / 0.7); }
.pa-select-tools, .pa-select-row, .pa-select-refine { display: flex; flex-wrap: wrap; gap: 6px;
  align-items: center; }
.pa-select-tools .pa-on { background: hsl(var(--primary)); color: hsl(var(--primary-foreground)); }
.pa-select-row { padding: 4px 0; border-top: 1px solid hsl(var(--border)); }
.pa-select-row.pa-active { background: hsl(var(--accent)); }
.pa-select-swatch { min-width: 26px; height: 26px; border-radius: 13px; border: 2px solid white;
  font: 700 15px/22px system-ui, sans-serif; text-align: center; cursor: pointer;
  box-shadow: 0 0 2px rgb(0 0 0 / 0.8); }
.pa-select-row input { flex: 1 1 12rem; min-width: 8rem; padding: 2px 6px;
  border: 1px solid hsl(var(--border)); border-radius: 6px; background: hsl(var(--background)); }
.pa-select-message { min-height: 1.25rem; }
.pa-select-button { padding: 2px 10px; border: 1px solid hsl(var(--border)); border-radius: 6px;
  background: hsl(var(--background)); }
.pa-select-button:hover { background: hsl(var(--accent)); }
.pa-select-button:disabled { opacity: 0.5; }
`;

// Black text on light colours, white on dark ones (as tools/overlay.py's labels).
const ink = (hex) => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "black" : "white";
};

// The picture as wide as the chat column allows, and at most 70% of the screen's height.
const fit = () => ({ maxWidth: `min(100%, calc(70vh * ${props.width / props.height}))` });

// The picture's row, as wide as the chat column: a click in it beside a narrower picture is
// answered (`beside`), not ignored.
function Stage({ beside, children }) {
  return (
    <div className="pa-select-stage"
         onClick={(event) => { if (event.target === event.currentTarget) beside(); }}>
      {children}
    </div>
  );
}

function NumberBadge({ number, colour, x, y, label }) {
  return (
    <span className="pa-select-number" aria-label={label}
          style={{ left: `${x}%`, top: `${y}%`, background: colour, color: ink(colour) }}>
      {number}
    </span>
  );
}

function Candidates() {
  const [message, setMessage] = useState("");
  // An answered question's boxes stay to look at, not to click (props.closed).
  const answer = (choice) => props.closed ? null
    : callAction({ name: "answer", payload: { text: choice, question: props.question } });
  // A click on the picture itself, beside every box (a box or a number is a button, and
  // answers on its own).
  const beside = (event) => {
    if (!props.closed && event.target.tagName === "IMG") setMessage(BESIDE_BOXES);
  };
  const candidates = props.candidates || [];
  const area = (c) => (c.box[2] - c.box[0]) * (c.box[3] - c.box[1]);
  // Smaller boxes above larger ones (a box inside another stays clickable); numbers above all.
  const ranked = [...candidates].sort((a, b) => area(b) - area(a));
  const at = (c) => ({ left: `${(100 * c.box[0]) / props.width}%`,
                       top: `${(100 * c.box[1]) / props.height}%` });
  return (
    <div className="pa-select" data-mode="choose" data-closed={props.closed ? "true" : "false"}>
      <style>{STYLE}</style>
      <Stage beside={() => { if (!props.closed) setMessage(BESIDE_PICTURE); }}>
        <div className="pa-select-box" style={{ ...fit(), cursor: "default" }} onClick={beside}>
          <img src={props.src} alt={props.name} draggable={false} />
          {ranked.map((c, z) => (
            <button key={c.number} type="button" className="pa-select-candidate"
                    data-number={c.number} title={`${c.number}: ${c.choice}`}
                    aria-label={`Candidate ${c.number}: ${c.choice}`} disabled={!!props.closed}
                    style={{ ...at(c), zIndex: 1 + z, borderColor: c.colour,
                             width: `${(100 * (c.box[2] - c.box[0])) / props.width}%`,
                             height: `${(100 * (c.box[3] - c.box[1])) / props.height}%` }}
                    onClick={() => answer(c.choice)} />
          ))}
          {candidates.map((c) => (
            <button key={c.number} type="button" className="pa-select-number pa-select-pick"
                    data-number={c.number} aria-label={`Choose ${c.number}: ${c.choice}`}
                    disabled={!!props.closed}
                    style={{ ...at(c), zIndex: 1000, background: c.colour, color: ink(c.colour) }}
                    onClick={() => answer(c.choice)}>{c.number}</button>
          ))}
        </div>
      </Stage>
      <div className="pa-select-message" aria-live="polite">
        {props.closed ? "Answered: these boxes no longer choose." : message}
      </div>
    </div>
  );
}

function Selecting() {
  const [state, setState] = useState(props.state);
  const [tool, setTool] = useState("point"); // point | brush | erase
  const [exclude, setExclude] = useState(false);
  const [active, setActive] = useState(null); // the selection gestures add to; null: a new one
  const [texts, setTexts] = useState({});
  const [busy, setBusy] = useState(null); // the call waiting for its answer, if any
  const waiting = busy !== null && busy !== "status"; // a poll doesn't hold the person up
  const [trace, setTrace] = useState(null); // the gesture being drawn, in image pixels
  const [cursor, setCursor] = useState(null); // the keyboard's point, in image pixels
  // The cursor shows while the keyboard has the picture (not after a mouse click on it).
  const [focused, setFocused] = useState(false);
  const [hint, setHint] = useState(""); // said here, not by the server: a click beside the picture
  const box = useRef(null);
  const press = useRef(null);
  const sent = useRef(0); // calls sent so far
  const selections = state.selections || [];
  const last = selections.length ? selections[selections.length - 1].number : null;
  const focus = active ?? last; // the selection exclusions and the eraser act on

  const send = async (op, extra) => {
    const mine = ++sent.current;
    if (op !== "status") setHint("");
    setBusy(op);
    try {
      const reply = await callAction({ name: "selection", payload: { canvas: props.canvas, op, ...extra } });
      if (op === "status" && mine !== sent.current) return; // a gesture's answer is newer
      const next = reply && reply.response;
      if (next && next.state) {
        setState(next.state);
        if (active !== null && !next.state.selections.some((s) => s.number === active)) setActive(null);
      } else if (next && next.message) { // refused outright (a canvas from before a reload)
        setState({ ...state, message: next.message, preparing: false, closed: true });
      }
    } finally {
      if (mine === sent.current) setBusy(null);
    }
  };

  useEffect(() => { // the picture's embedding is being prepared: ask again until it is ready
    if (!state.preparing || state.closed) return undefined;
    const timer = setTimeout(() => send("status", {}), POLL_MS);
    return () => clearTimeout(timer);
  }, [state]);

  const at = (event) => { // screen → the version's pixels
    const rect = box.current.getBoundingClientRect();
    return [((event.clientX - rect.left) / rect.width) * props.width,
            ((event.clientY - rect.top) / rect.height) * props.height];
  };
  const down = (event) => {
    if (waiting || state.closed) return;
    event.currentTarget.setPointerCapture(event.pointerId);
    setCursor(at(event)); // the keyboard goes on from the last click
    press.current = { x: event.clientX, y: event.clientY, points: [at(event)], moved: false,
                      shift: event.shiftKey };
    setTrace(tool === "point" ? null : { kind: tool, points: press.current.points });
  };
  const move = (event) => {
    const p = press.current;
    if (!p) return;
    if (Math.hypot(event.clientX - p.x, event.clientY - p.y) > DRAG_PX) p.moved = true;
    if (tool === "point") {
      if (p.moved) setTrace({ kind: "box", points: [p.points[0], at(event)] });
    } else {
      p.points = [...p.points, at(event)];
      setTrace({ kind: tool, points: p.points });
    }
  };
  // A click (or Enter) at `point`: a shift, or the Exclude toggle, takes the point out; an
  // exclude without a chosen selection goes to the one under it.
  const click = (point, shift) => send("gesture", {
    kind: shift || exclude ? "exclude" : "include", points: [point], number: active,
    radius: props.brush });
  const up = (event) => {
    const p = press.current;
    press.current = null;
    setTrace(null);
    if (!p) return;
    if (tool === "point" && !p.moved) {
      click(p.points[0], p.shift);
      return;
    }
    let kind, points, number = active;
    if (tool !== "point") {
      kind = tool === "brush" ? "brush" : "erase";
      points = [...p.points, at(event)];
      if (kind === "erase") number = focus;
    } else {
      kind = "box";
      points = [p.points[0], at(event)];
    }
    send("gesture", { kind, points, number, radius: props.brush });
  };
  const cancel = () => { press.current = null; setTrace(null); };
  const spot = cursor ?? [props.width / 2, props.height / 2]; // it starts in the middle
  const key = (event) => { // the arrows move the cursor; Enter is a click there
    setFocused(true);
    if (KEY_MOVES[event.key]) {
      event.preventDefault(); // not a scroll of the chat
      const [dx, dy] = KEY_MOVES[event.key];
      const within = (v, side) => Math.min(side, Math.max(0, v));
      setCursor([within(spot[0] + dx * KEY_STEP * props.width, props.width),
                 within(spot[1] + dy * KEY_STEP * props.height, props.height)]);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (waiting || state.closed) return;
      click(spot, event.shiftKey);
    }
  };

  const order = (number, step) => {
    const numbers = selections.map((s) => s.number);
    const i = numbers.indexOf(number);
    const j = i + step;
    if (j < 0 || j >= numbers.length) return;
    [numbers[i], numbers[j]] = [numbers[j], numbers[i]];
    send("reorder", { numbers });
  };
  const written = selections.filter((s) => (texts[s.number] || "").trim());
  const toolButton = (name, label) => (
    <button type="button" className={"pa-select-button" + (tool === name ? " pa-on" : "")}
            aria-pressed={tool === name} onClick={() => setTool(name)}>{label}</button>
  );
  // A number stays whole inside the picture, even for a selection along its edge.
  const inside = (share) => Math.min(96, Math.max(4, share));
  const pct = ([x, y]) => [inside((100 * x) / props.width), inside((100 * y) / props.height)];

  return (
    <div className="pa-select" data-mode="select" data-canvas={props.canvas}
         data-version={props.version} data-count={selections.length}
         data-busy={waiting ? "true" : "false"} data-preparing={state.preparing ? "true" : "false"}>
      <style>{STYLE}</style>
      <div className="pa-select-tools" role="toolbar" aria-label="Selection tools">
        {toolButton("point", "Point / box")}
        {toolButton("brush", "Brush")}
        {toolButton("erase", "Eraser")}
        <button type="button" className={"pa-select-button" + (exclude ? " pa-on" : "")}
                aria-pressed={exclude} onClick={() => setExclude(!exclude)}
                title="Clicks take points out of the selection (as shift-click does)">
          Exclude
        </button>
        <button type="button" className={"pa-select-button" + (active === null ? " pa-on" : "")}
                aria-pressed={active === null} onClick={() => setActive(null)}
                title="The next click, box or stroke starts a new selection">
          New selection
        </button>
      </div>
      <Stage beside={() => { if (!state.closed) setHint(BESIDE_PICTURE); }}>
        <div ref={box} className="pa-select-box" style={fit()} onPointerDown={down}
             onPointerMove={move} onPointerUp={up} onPointerCancel={cancel}
             tabIndex={0} role="application" onKeyDown={key}
             onFocus={(e) => setFocused(e.currentTarget.matches(":focus-visible"))}
             onBlur={() => setFocused(false)}
             aria-label={`${props.name}: arrow keys move the cursor, Enter selects what is under ` +
                         "it, Shift+Enter takes it out"}>
          <img src={props.src} alt={props.name} draggable={false} />
          {selections.map((s) => (
            <img key={s.number} className="pa-select-mask" src={s.mask}
                 data-number={s.number} alt={`selection ${s.number}`} draggable={false} />
          ))}
          {selections.filter((s) => s.anchor).map((s) => {
            const [x, y] = pct(s.anchor);
            return <NumberBadge key={s.number} number={s.number} colour={s.colour} x={x} y={y}
                                label={`selection ${s.number}`} />;
          })}
          {focused && !state.closed && (
            <span className="pa-select-cursor" data-x={spot[0]} data-y={spot[1]}
                  style={{ left: `${(100 * spot[0]) / props.width}%`,
                           top: `${(100 * spot[1]) / props.height}%` }} />
          )}
          {trace && (
            <svg viewBox={`0 0 ${props.width} ${props.height}`} preserveAspectRatio="none"
                 style={{ position: "absolute", inset: 0, width: "100%", height: "100%",
                          pointerEvents: "none" }} aria-hidden="true">
              {trace.kind === "box" ? (
                <rect x={Math.min(trace.points[0][0], trace.points[1][0])}
                      y={Math.min(trace.points[0][1], trace.points[1][1])}
                      width={Math.abs(trace.points[1][0] - trace.points[0][0])}
                      height={Math.abs(trace.points[1][1] - trace.points[0][1])}
                      fill="none" stroke="white" strokeWidth={2} strokeDasharray="6 4"
                      vectorEffect="non-scaling-stroke" />
              ) : (
                <polyline points={trace.points.map((p) => p.join(",")).join(" ")} fill="none"
                          stroke={trace.kind === "erase" ? "rgb(0 0 0 / 0.5)" : "rgb(255 255 255 / 0.6)"}
                          strokeWidth={2 * props.brush} strokeLinecap="round" strokeLinejoin="round" />
              )}
            </svg>
          )}
          {(state.preparing || waiting) && !state.closed && (
            <span className="pa-select-status" role="status">
              {state.preparing ? "preparing selection…"
                : ["apply", "answer"].includes(busy) ? "editing…" : "segmenting…"}
            </span>
          )}
        </div>
      </Stage>
      <div className="pa-select-message" aria-live="polite">{hint || state.message}</div>
      {selections.map((s, i) => (
        <div key={s.number} className={"pa-select-row" + (s.number === focus ? " pa-active" : "")}
             data-number={s.number}>
          <button type="button" className="pa-select-swatch"
                  style={{ background: s.colour, color: ink(s.colour) }}
                  aria-pressed={active === s.number}
                  title={`Add the next gestures to selection ${s.number}`}
                  onClick={() => setActive(active === s.number ? null : s.number)}>
            {s.number}
          </button>
          <input type="text" value={texts[s.number] || ""}
                 aria-label={`Instruction for selection ${s.number}`}
                 placeholder={`what to do with ${s.number} (or refer to it in a message)`}
                 onChange={(e) => setTexts({ ...texts, [s.number]: e.target.value })} />
          <span className="pa-select-refine">
            {[["grow", "Grow"], ["shrink", "Shrink"], ["invert", "Invert"], ["undo", "Undo"],
              ["clear", "Clear"], ["remove", "Remove"]].map(([op, label]) => (
              <button key={op} type="button" className="pa-select-button" disabled={waiting}
                      aria-label={`${label} selection ${s.number}`}
                      onClick={() => send("refine", { number: s.number, refine: op })}>{label}</button>
            ))}
            <button type="button" className="pa-select-button" disabled={waiting || i === 0}
                    aria-label={`Selection ${s.number} earlier (under the others)`}
                    onClick={() => order(s.number, -1)}>▲</button>
            <button type="button" className="pa-select-button"
                    disabled={waiting || i === selections.length - 1}
                    aria-label={`Selection ${s.number} later (over the others)`}
                    onClick={() => order(s.number, 1)}>▼</button>
          </span>
        </div>
      ))}
      <div className="pa-select-refine">
        {written.length > 0 && (
          <button type="button" className="pa-select-button" disabled={waiting || state.closed}
                  onClick={() => send("apply", { instructions: Object.fromEntries(
                    written.map((s) => [s.number, texts[s.number].trim()])) })}>
            Edit {written.map((s) => s.number).join(", ")} in one pass
          </button>
        )}
        {props.answering && selections.length > 0 && (
          <button type="button" className="pa-select-button" disabled={waiting || state.closed}
                  onClick={() => send("answer", {})}>
            This is where: answer with the selection
          </button>
        )}
      </div>
    </div>
  );
}

export default function SelectionCanvas() {
  return props.mode === "choose" ? <Candidates /> : <Selecting />;
}
