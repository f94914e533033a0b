document.getElementById("signup").addEventListener("click", function () {
  window.glimpse && window.glimpse("Signup", { props: { plan: "demo" } });
});
