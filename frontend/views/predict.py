from frontend import pages

pages.predict_page(pages.Context.current())
