// The token field: the JWT is kept in a cookie of this site (SameSite=Strict), which the
// server takes for GET and HEAD only, so pages, previews and downloads carry it.
(function () {
  var form = document.getElementById("token-form");
  if (!form) return;
  var forget = document.getElementById("token-forget");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var token = document.getElementById("token").value.trim();
    if (!token) return;
    document.cookie = "datamonfs_token=" + encodeURIComponent(token) +
      "; path=/; SameSite=Strict; max-age=86400";
    location.reload();
  });
  forget.addEventListener("click", function () {
    document.cookie = "datamonfs_token=; path=/; SameSite=Strict; max-age=0";
    location.reload();
  });
})();
