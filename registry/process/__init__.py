"""Process plumbing, beside the domain's ground floor: the background loops every process runs
(``loop``) and the metric files its processes share (``metric_files``). Nothing here knows a table."""
