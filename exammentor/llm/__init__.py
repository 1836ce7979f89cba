"""The model endpoint: the OpenAI-compatible client, the embedded server, model answers
checked for loops and copies, and the endpoint check."""
