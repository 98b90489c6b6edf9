"""The benchmark's parts, by concern: the load generator (wrk.py), the two servers and what is
measured against them (servers.py), the request bodies (requests.py), the summary and headline
(summary.py), the plot and tables (report.py) and the image size (image.py). ``ml_cicd.benchmark``
runs them."""
