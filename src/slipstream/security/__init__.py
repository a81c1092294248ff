"""What the web pages and the REST API share about a request: who is asking, what their
role allows, CSRF protection, and the services (configuration, database) to act with."""
