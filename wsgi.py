from app import create_app

app = create_app(web_process=True)
