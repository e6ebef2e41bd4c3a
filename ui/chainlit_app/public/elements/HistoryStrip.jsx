// One picture's version tree (props from ui/handlers.py history_props): a lane per branch, a
// column per step from the upload. A click on a version goes there (the "go" action); hover or
// focus shows what made it. After a move, the version moved to is shown below, with its buttons.
import { useEffect, useRef, useState } from "react";

const CELL = 64;
const GAP_X = 22;
const GAP_Y = 10;

export default function HistoryStrip() {
  const [hovered, setHovered] = useState(null);
  const [against, setAgainst] = useState("");
  const strip = useRef(null);
  const nodes = props.nodes || [];
  const byVersion = Object.fromEntries(nodes.map((n) => [n.version, n]));
  const columns = Math.max(1, ...nodes.map((n) => n.column + 1));
  const rows = Math.max(1, ...nodes.map((n) => n.row + 1));
  const width = columns * (CELL + GAP_X) - GAP_X;
  const height = rows * (CELL + GAP_Y) - GAP_Y;
  const x = (n) => n.column * (CELL + GAP_X);
  const y = (n) => n.row * (CELL + GAP_Y);
  const shown = byVersion[hovered ?? props.current];
  const act = (name, payload) => callAction({ name, payload });

  useEffect(() => {  // a long or branchy history scrolls; keep the chat's version in sight
    const here = byVersion[props.current];
    const box = strip.current;
    if (!here || !box) return;
    box.scrollLeft = x(here) + CELL / 2 - box.clientWidth / 2;
    box.scrollTop = y(here) + CELL / 2 - box.clientHeight / 2;
  }, [props.current, nodes.length]);

  return (
    <div className="pa-history" data-session={props.session} data-current={props.current}>
      <div ref={strip} className="pa-history-strip" role="group"
           aria-label="Versions of this picture">
        <div style={{ position: "relative", width, height }}>
          <svg width={width} height={height} style={{ position: "absolute", inset: 0 }}
               aria-hidden="true">
            {nodes.filter((n) => byVersion[n.parent] !== undefined).map((n) => {
              const p = byVersion[n.parent];
              const x0 = x(p) + CELL, y0 = y(p) + CELL / 2;
              const x1 = x(n), y1 = y(n) + CELL / 2;
              return <path key={n.version} className="pa-history-edge" fill="none"
                           d={`M${x0},${y0} C${x0 + GAP_X / 2},${y0} ${x1 - GAP_X / 2},${y1} ${x1},${y1}`} />;
            })}
          </svg>
          {nodes.map((n) => (
            <button key={n.version} type="button"
                    className={"pa-history-node" + (n.version === props.current ? " pa-current" : "")}
                    style={{ left: x(n), top: y(n), width: CELL, height: CELL }}
                    data-version={n.version}
                    aria-current={n.version === props.current ? "true" : undefined}
                    title={`Version ${n.version}: ${n.lines.join("; ")}`}
                    onMouseEnter={() => setHovered(n.version)}
                    onMouseLeave={() => setHovered(null)}
                    onFocus={() => setHovered(n.version)}
                    onBlur={() => setHovered(null)}
                    onClick={() => act("go", { session: props.session, version: n.version })}>
              <img src={n.thumbnail} alt={`version ${n.version}`} draggable={false} />
              <span className="pa-history-number">{n.version}</span>
            </button>
          ))}
        </div>
      </div>
      {shown && (
        <div className="pa-history-detail" aria-live="polite">
          <strong>Version {shown.version}</strong>
          {shown.version === props.current ? " (this chat is here)" : ""}: {shown.lines.join("; ")}
        </div>
      )}
      {props.preview && (
        <img className="pa-history-preview" src={props.preview.src} alt={props.preview.name} />
      )}
      <div className="pa-history-actions">
        {(props.actions || []).map((a) => (
          <button key={a.name} type="button" className="pa-button"
                  onClick={() => act(a.name, a.payload)}>{a.label}</button>
        ))}
        {nodes.length > 1 && (
          <label className="pa-history-compare">
            Compare version {props.current} with{" "}
            <select value={against} aria-label="Compare with version"
                    onChange={(e) => {
                      setAgainst("");
                      if (e.target.value !== "") {
                        act("compare", { session: props.session, version: props.current,
                                         against: Number(e.target.value) });
                      }
                    }}>
              <option value="">…</option>
              {nodes.filter((n) => n.version !== props.current).map((n) => (
                <option key={n.version} value={n.version}>version {n.version}</option>
              ))}
            </select>
          </label>
        )}
      </div>
    </div>
  );
}
