// Before/after of two versions (props from ui/handlers.py compare_props): the "after" picture
// with the "before" one over it, clipped at the divider. Drag anywhere on the pictures (mouse,
// pen or finger) or use the range input under them (keyboard) to move the divider. At most 70%
// of the screen's height, as wide as the chat column allows.
import { useRef, useState } from "react";

export default function CompareSlider() {
  const [position, setPosition] = useState(50);
  const box = useRef(null);
  const dragging = useRef(false);

  const moveTo = (clientX) => {
    const rect = box.current.getBoundingClientRect();
    const share = ((clientX - rect.left) / rect.width) * 100;
    setPosition(Math.round(Math.min(100, Math.max(0, share))));
  };
  const start = (event) => {
    dragging.current = true;
    event.currentTarget.setPointerCapture(event.pointerId);
    moveTo(event.clientX);
  };
  const drag = (event) => { if (dragging.current) moveTo(event.clientX); };
  const stop = () => { dragging.current = false; };

  return (
    <div className="pa-compare" style={{ maxWidth: `min(100%, calc(70vh * ${props.aspect}))` }}>
      <div ref={box} className="pa-compare-box" onPointerDown={start} onPointerMove={drag}
           onPointerUp={stop} onPointerCancel={stop}>
        <img className="pa-compare-after" src={props.after.src} alt={props.after.name}
             draggable={false} />
        <img className="pa-compare-before" src={props.before.src} alt={props.before.name}
             draggable={false} style={{ clipPath: `inset(0 ${100 - position}% 0 0)` }} />
        <div className="pa-compare-divider" style={{ left: `${position}%` }} aria-hidden="true" />
        <span className="pa-compare-label pa-left">{props.before.label}</span>
        <span className="pa-compare-label pa-right">{props.after.label}</span>
      </div>
      <input type="range" min="0" max="100" value={position} className="pa-compare-range"
             aria-label={`Share of ${props.before.label} shown over ${props.after.label}`}
             onChange={(event) => setPosition(Number(event.target.value))} />
    </div>
  );
}
