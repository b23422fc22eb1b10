"""What browser tests add to every page to see what its Content-Security-Policy blocks."""

# Every page reports what its Content-Security-Policy blocked: the event's details go to the console, as an error.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", event => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
                + ` at ${event.sourceFile}:${event.lineNumber}`);
});
"""
