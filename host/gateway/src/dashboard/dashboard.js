// Refreshes the page's <main> every few seconds in place (no reload, no
// flicker, the scroll kept); without scripts, a meta refresh does it.
(() => {
  const main = document.querySelector("main");
  const every = Number(main?.dataset.refresh || 5) * 1000;
  async function refresh() {
    try {
      const answer = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = page.querySelector("main");
        if (fresh) main.replaceChildren(...fresh.childNodes);
      }
    } catch (_) {
      // The gateway is restarting: try again at the next tick.
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
