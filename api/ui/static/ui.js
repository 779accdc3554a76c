// The dashboard's own script, loaded from the service ('self' in its Content-Security-Policy, which
// refuses inline handlers such as onclick="…"): a button marked data-print prints the page.
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
