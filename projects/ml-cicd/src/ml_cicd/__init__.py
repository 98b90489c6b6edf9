"""ml-cicd: a review-classification service in a container, its CI, and a retrain pipeline that
runs when new data is committed."""

PROJECT = "ml-cicd"
