<div class="plesk-reseller">
  <h3>Plesk license</h3>
  {if $error}<div class="alert alert-warning">{$error|escape}</div>{/if}
  <table class="table">
    <tr><th>State</th><td>{$state|escape}</td></tr>
    <tr><th>Key number</th><td>{$keyNumber|escape}</td></tr>
    <tr><th>Installed on the server</th><td>{$installed|escape}</td></tr>
    <tr><th>Last event</th><td>{$lastEvent|escape}</td></tr>
  </table>
</div>
