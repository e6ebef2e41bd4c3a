// A file a "Download" button asked for (props from ui/shown.py download_props): the browser
// saves it when it arrives, once (not again at a reload, nor in another window opened on the
// chat later); the link saves it again.
import { useEffect, useRef } from "react";

const FRESH_MS = 60000; // a download element older than this is from the transcript: no save

export default function DownloadFile() {
  const link = useRef(null);
  useEffect(() => {
    const saved = `promptartisan-saved-${props.key}`;
    if (Math.abs(Date.now() - props.made) > FRESH_MS || localStorage.getItem(saved)) return;
    localStorage.setItem(saved, "1");
    link.current.click();
  }, []);
  return (
    <a ref={link} className="pa-button pa-download" href={props.src} download={props.name}>
      Save {props.name} again
    </a>
  );
}
