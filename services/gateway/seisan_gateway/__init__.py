"""The web app: staff, approvers and treasury in a browser, over the services' gRPC APIs."""
