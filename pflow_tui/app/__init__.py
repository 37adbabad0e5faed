"""The Textual debugger app. Only this package imports Textual."""
